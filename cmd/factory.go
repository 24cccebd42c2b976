package cmd

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/oairl/oairl/internal/api"
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

	// HTTPClient returns the client for API calls (tests inject one).
	HTTPClient func() (*http.Client, error)

	flags struct {
		baseURL    string
		provider   string
		apiVersion string
		modelsFile string
		quiet      bool
		noProgress bool
	}

	regOnce sync.Once
	reg     *models.Registry
	regErr  error
}

// NewFactory returns a factory reading the environment through getenv.
func NewFactory(ios *iostreams.IOStreams, getenv func(string) string, version string) *Factory {
	return &Factory{
		IOStreams:   ios,
		Version:     version,
		Getenv:      getenv,
		Now:         time.Now,
		HardContext: context.Background(),
		HTTPClient:  func() (*http.Client, error) { return &http.Client{}, nil },
	}
}

// Config resolves the global configuration.
func (f *Factory) Config() Config {
	c := Config{
		BaseURL:   f.flags.baseURL,
		APIKey:    f.Getenv("OPENAI_API_KEY"),
		OrgID:     f.Getenv("OPENAI_ORG_ID"),
		ProjectID: f.Getenv("OPENAI_PROJECT_ID"),
	}
	if c.BaseURL == "" {
		c.BaseURL = f.Getenv("OPENAI_BASE_URL")
	}
	if c.BaseURL == "" {
		c.BaseURL = DefaultBaseURL
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

// APIClient returns the API client for the resolved configuration. It
// fails when no API key is set.
func (f *Factory) APIClient() (*api.Client, error) {
	c := f.Config()
	if c.ProviderErr != nil {
		return nil, c.ProviderErr
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
	if k := f.Getenv("OPENAI_API_KEY"); k != "" {
		return []string{k}
	}
	return nil
}
