package cmd

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/oairl/oairl/internal/api"
	"github.com/oairl/oairl/internal/clock"
	"github.com/oairl/oairl/internal/httpx"
	"github.com/oairl/oairl/internal/iostreams"
	"github.com/oairl/oairl/internal/models"
	"github.com/oairl/oairl/internal/provider"
)

// DefaultBaseURL is OpenAI's API base URL.
const DefaultBaseURL = "https://api.openai.com/v1"

// Config is the resolved global configuration: flags win, then environment,
// then defaults. Resolved once, in the factory; commands get plain values.
type Config struct {
	BaseURL   string
	APIKey    string
	OrgID     string
	ProjectID string
	// Provider is --provider (env OAIRL_PROVIDER), else detected from the
	// base URL (internal/provider).
	Provider provider.Provider
	// APIVersion is Azure's api-version (--api-version, env
	// OPENAI_API_VERSION; "" = the provider's default).
	APIVersion string
	// ProviderErr is set when --provider names no known provider.
	ProviderErr error
	// baseURLFrom names where BaseURL came from (for messages).
	baseURLFrom string
}

// SendErr is the usage error (exit 2) that stops a command before its
// first request: an unknown --provider, a base URL that is not http(s)
// with a host, or an API key with whitespace or control characters (a
// trailing newline from a file). Every command that sends (run, proxy,
// diagnose live, batch, limits pull) gets it through APIClient or calls it
// itself, so nothing is sent, retried or recorded with such a config. The
// message never contains the key.
func (c Config) SendErr() error {
	if c.ProviderErr != nil {
		return c.ProviderErr
	}
	if err := checkBaseURL(c.BaseURL, c.baseURLFrom); err != nil {
		return err
	}
	return checkAPIKey(c.APIKey, "OPENAI_API_KEY")
}

// checkBaseURL accepts an http or https URL with a host.
func checkBaseURL(raw, from string) error {
	if from == "" {
		from = "the base URL"
	}
	u, err := url.Parse(raw)
	shown := raw
	if err == nil {
		shown = u.Redacted()
	}
	why := ""
	switch {
	case err != nil:
		why = "it does not parse as a URL"
		if !strings.Contains(raw, "://") {
			why = "it has no scheme"
		}
	case u.Scheme != "http" && u.Scheme != "https":
		why = "the scheme is not http or https"
		if u.Scheme == "" {
			why = "it has no scheme"
		}
	case u.Host == "" || u.Hostname() == "":
		why = "it has no host"
	}
	if why == "" {
		return nil
	}
	return FlagErrorf("%s %q is not usable: %s; want http:// or https:// followed by a host, e.g. http://127.0.0.1:8080/v1 or %s; nothing was sent", from, shown, why, DefaultBaseURL)
}

// checkAPIKey refuses a key with whitespace or control characters (which
// no API key has: usually a newline left by a file or a paste). It says
// where, never what.
func checkAPIKey(key, name string) error {
	for i, r := range key {
		if r > unicode.MaxASCII || unicode.IsSpace(r) || unicode.IsControl(r) {
			what := "whitespace"
			switch {
			case r == '\n' || r == '\r':
				what = "a line break"
			case r > unicode.MaxASCII:
				what = "a non-ASCII character"
			case unicode.IsControl(r) && r != '\t':
				what = "a control character"
			}
			where := fmt.Sprintf("at byte %d of %d", i+1, len(key))
			if strings.TrimSpace(key[i:]) == "" {
				where = "at its end"
			} else if strings.TrimSpace(key[:i]) == "" {
				where = "at its start"
			}
			return FlagErrorf("%s contains %s %s (API keys have none; trim it, e.g. export %s=\"$(printf %%s \"$%s\" | tr -d '[:space:]')\"); nothing was sent", name, what, where, name, name)
		}
	}
	return nil
}

// Factory holds the dependencies commands share, as lazy funcs, so that
// `oairl count` never builds an HTTP client or needs a key.
type Factory struct {
	IOStreams *iostreams.IOStreams
	Version   string
	Getenv    func(string) string
	Now       func() time.Time
	// HardContext is cancelled on a second Ctrl-C (the command's own
	// context is cancelled on the first). Never nil.
	HardContext context.Context

	// HTTPClient returns the client for every API call (tests inject one).
	// The default, built on each call after the flags are parsed, is
	// oairl's one HTTP layer (internal/httpx): User-Agent oairl/VERSION, an
	// idle pool sized by SetHTTPTuning, retries of idempotent calls on the
	// tuned clock, and a trace to stderr with --debug or OAIRL_DEBUG=api.
	HTTPClient func() (*http.Client, error)

	flags struct {
		baseURL    string
		provider   string
		apiVersion string
		modelsFile string
		quiet      bool
		noProgress bool
		debug      bool
	}

	// jsonOutput is set once a command's --format json/--json is parsed.
	jsonOutput bool

	httpTuning struct {
		concurrency int
		clock       clock.Clock
	}

	regOnce sync.Once
	reg     *models.Registry
	regErr  error

	pulledOnce sync.Once
	pulled     *models.Pulled
	pulledErr  error
}

// NewFactory returns a factory reading the environment through getenv.
func NewFactory(ios *iostreams.IOStreams, getenv func(string) string, version string) *Factory {
	f := &Factory{
		IOStreams:   ios,
		Version:     version,
		Getenv:      getenv,
		Now:         time.Now,
		HardContext: context.Background(),
	}
	f.HTTPClient = f.defaultHTTPClient
	return f
}

// SetHTTPTuning tells the HTTP layer the command's concurrency (requests
// in flight at once: the idle pool keeps that many connections) and the
// clock its retry waits run on (nil = the wall clock; a --time-scale
// clock or a test's fake clock otherwise). Call it before HTTPClient.
func (f *Factory) SetHTTPTuning(concurrency int, clk clock.Clock) {
	f.httpTuning.concurrency = concurrency
	f.httpTuning.clock = clk
}

// Debug reports whether API traces are on: --debug, or OAIRL_DEBUG
// containing "api" (a comma-separated list; "1" and "all" count too).
func (f *Factory) Debug() bool {
	if f.flags.debug {
		return true
	}
	for _, w := range strings.Split(f.Getenv("OAIRL_DEBUG"), ",") {
		switch strings.TrimSpace(strings.ToLower(w)) {
		case "api", "1", "all", "true":
			return true
		}
	}
	return false
}

func (f *Factory) defaultHTTPClient() (*http.Client, error) {
	o := httpx.Options{
		UserAgent:  "oairl/" + f.Version,
		MaxConns:   f.httpTuning.concurrency,
		MaxRetries: -1,
		Clock:      f.httpTuning.clock,
		Secrets:    f.secrets(),
	}
	if f.Debug() {
		o.Trace = f.IOStreams.ErrOut
	}
	return httpx.New(o), nil
}

// Config resolves the global configuration.
func (f *Factory) Config() Config {
	c := Config{
		BaseURL:   f.flags.baseURL,
		APIKey:    f.Getenv("OPENAI_API_KEY"),
		OrgID:     f.Getenv("OPENAI_ORG_ID"),
		ProjectID: f.Getenv("OPENAI_PROJECT_ID"),
	}
	c.baseURLFrom = "--base-url"
	if c.BaseURL == "" {
		c.BaseURL, c.baseURLFrom = f.Getenv("OPENAI_BASE_URL"), "OPENAI_BASE_URL"
	}
	if c.BaseURL == "" {
		c.BaseURL, c.baseURLFrom = DefaultBaseURL, ""
	}
	c.BaseURL = strings.TrimRight(c.BaseURL, "/")
	name := f.flags.provider
	if name == "" {
		name = f.Getenv("OAIRL_PROVIDER")
	}
	p, ok := provider.Resolve(name, c.BaseURL)
	if !ok {
		c.ProviderErr = &FlagError{Err: fmt.Errorf("unknown provider %q: want auto, %s", name, strings.Join(provider.Names(), ", "))}
		p = provider.Detect(c.BaseURL)
	}
	c.Provider = p
	c.APIVersion = f.flags.apiVersion
	if c.APIVersion == "" {
		c.APIVersion = f.Getenv("OPENAI_API_VERSION")
	}
	return c
}

// Registry returns the model registry, built-in plus --models/OAIRL_MODELS.
func (f *Factory) Registry() (*models.Registry, error) {
	f.regOnce.Do(func() {
		defer f.applyPulled()
		path := f.flags.modelsFile
		if path == "" {
			path = f.Getenv("OAIRL_MODELS")
		}
		if path == "" {
			f.reg, f.regErr = models.Load(nil)
			return
		}
		fh, err := os.Open(path)
		if err != nil {
			f.regErr = fmt.Errorf("models file: %w", err)
			return
		}
		defer fh.Close()
		f.reg, f.regErr = models.Load(fh)
		if f.regErr != nil {
			f.regErr = fmt.Errorf("%s: %w", path, f.regErr)
		}
	})
	return f.reg, f.regErr
}

// applyPulled adds the pulled project limits (if any) to the registry as
// tier models.PulledTier (called once, while the registry is built).
func (f *Factory) applyPulled() {
	if f.regErr != nil || f.reg == nil {
		return
	}
	if p, err := f.Pulled(); err == nil && p != nil {
		f.reg.ApplyPulled(p)
	}
}

// explicitProvider is the provider named by --provider or OAIRL_PROVIDER,
// "" when none (or "auto") is named.
func (f *Factory) explicitProvider() string {
	name := f.flags.provider
	if name == "" {
		name = f.Getenv("OAIRL_PROVIDER")
	}
	if p, ok := provider.Get(name); ok {
		return p.Name
	}
	return ""
}

// LimitsPath is where `oairl limits pull` writes and the other commands
// read a project's real limits: $OAIRL_LIMITS, else limits.json in the
// state directory.
func (f *Factory) LimitsPath() string {
	if p := f.Getenv("OAIRL_LIMITS"); p != "" {
		return p
	}
	return filepath.Join(batchStateDir(f.Getenv), "limits.json")
}

// Pulled returns the project limits written by `oairl limits pull`, nil
// when there is no limits file.
func (f *Factory) Pulled() (*models.Pulled, error) {
	f.pulledOnce.Do(func() {
		path := f.LimitsPath()
		fh, err := os.Open(path)
		if errors.Is(err, fs.ErrNotExist) {
			return
		}
		if err != nil {
			f.pulledErr = err
			return
		}
		defer fh.Close()
		f.pulled, f.pulledErr = models.ReadPulled(fh)
		if f.pulledErr != nil {
			f.pulledErr = fmt.Errorf("%s: %w", path, f.pulledErr)
		}
	})
	return f.pulled, f.pulledErr
}

// pulledTier returns models.PulledTier and a note for stderr when a limits
// file exists and the command was given no tier and no limits of its own
// (flags and OAIRL_TIER win over the file); "" otherwise.
func (f *Factory) pulledTier() (tier, note string, err error) {
	p, err := f.Pulled()
	if err != nil || p == nil {
		return "", "", err
	}
	return models.PulledTier, fmt.Sprintf("limits: using project %s's limits pulled from the Admin API at %s (%s; %d models), not the public tier table",
		p.ProjectID, p.PulledAt.Format(time.RFC3339), f.LimitsPath(), len(p.Models)), nil
}

// AdminClient returns an API client that authenticates with the admin key
// in OPENAI_ADMIN_KEY (for `oairl limits pull`); the key is used for the
// request only, never printed or stored.
func (f *Factory) AdminClient() (*api.Client, error) {
	c := f.Config()
	key := f.Getenv("OPENAI_ADMIN_KEY")
	if key == "" {
		return nil, fmt.Errorf("no admin key: set OPENAI_ADMIN_KEY (an organization admin key; any sk-admin-… value works against oairl sim)")
	}
	if err := checkBaseURL(c.BaseURL, c.baseURLFrom); err != nil {
		return nil, err
	}
	if err := checkAPIKey(key, "OPENAI_ADMIN_KEY"); err != nil {
		return nil, err
	}
	hc, err := f.HTTPClient()
	if err != nil {
		return nil, err
	}
	return api.New(api.Options{BaseURL: c.BaseURL, APIKey: key, OrgID: c.OrgID, HTTPClient: hc, UserAgent: "oairl/" + f.Version}), nil
}

// APIClient returns the API client for the resolved configuration. It
// fails when no API key is set.
func (f *Factory) APIClient() (*api.Client, error) {
	c := f.Config()
	if err := c.SendErr(); err != nil {
		return nil, err
	}
	if c.APIKey == "" {
		return nil, fmt.Errorf("no API key: set OPENAI_API_KEY (any value works against oairl sim)")
	}
	hc, err := f.HTTPClient()
	if err != nil {
		return nil, err
	}
	return api.New(api.Options{
		BaseURL: c.BaseURL, APIKey: c.APIKey, OrgID: c.OrgID, ProjectID: c.ProjectID,
		HTTPClient: hc, UserAgent: "oairl/" + f.Version, Provider: c.Provider, APIVersion: c.APIVersion,
	}), nil
}

// secrets lists values that must never be printed.
func (f *Factory) secrets() []string {
	var out []string
	for _, k := range []string{"OPENAI_API_KEY", "OPENAI_ADMIN_KEY"} {
		if v := f.Getenv(k); v != "" {
			out = append(out, v)
		}
	}
	return out
}
