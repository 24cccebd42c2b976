package tokens

// Image input tokens, from OpenAI's "Images and vision" guide, section
// "Calculating costs" (developers.openai.com/api/docs/guides/images-vision#calculating-costs,
// formerly platform.openai.com/docs/guides/vision):
//
//   - Tile models: detail "low" costs the base tokens. "high": scale to
//     fit in 2048×2048, then scale so the shortest side is 768 px (never
//     up), count the 512-px tiles that cover it; base + tile × tiles.
//     gpt-4o, gpt-4.1, gpt-4.5, chatgpt-4o-latest, gpt-4-turbo: 85 + 170/tile;
//     gpt-4o-mini: 2833 + 5667/tile; o1, o1-pro, o3: 75 + 150/tile;
//     gpt-5, gpt-5-chat-latest: 70 + 140/tile; computer-use-preview: 65 + 129/tile.
//   - Patch models (gpt-4.1-mini, gpt-4.1-nano, o4-mini, gpt-5-mini,
//     gpt-5-nano): ceil(w/32)×ceil(h/32) patches; above 1536 the image is
//     scaled down to fit 1536 patches; tokens = patches × a multiplier
//     (1.62, 2.46, 1.72, 1.62, 2.46). Users have measured other multipliers
//     (community.openai.com "GPT-5-mini image input token calculation
//     discrepancy"), so patch counts are flagged as estimates.
//
// Detail "auto" is counted as "high" (an estimate: the model picks).
// Remote URLs and file ids have no size offline: AssumedImageWidth ×
// AssumedImageHeight is used and the count flagged (note
// image_size_assumed). Data-URL images are measured from their headers
// (PNG, JPEG, GIF via the standard decoders; WebP by its RIFF header).

import (
	"encoding/base64"
	"encoding/binary"
	"image"
	_ "image/gif" // register decoders for image.DecodeConfig
	_ "image/jpeg"
	_ "image/png"
	"io"
	"math"
	"strings"
)

type imageFamily struct {
	patch      bool
	base, tile int64
	mult       float64
	known      bool
}

func imageFamilyOf(base string) imageFamily {
	patch := []struct {
		prefix string
		mult   float64
	}{{"gpt-4.1-mini", 1.62}, {"gpt-4.1-nano", 2.46}, {"o4-mini", 1.72}, {"gpt-5-mini", 1.62}, {"gpt-5-nano", 2.46}}
	for _, p := range patch {
		if strings.HasPrefix(base, p.prefix) {
			return imageFamily{patch: true, mult: p.mult, known: true}
		}
	}
	tiles := []struct {
		prefix     string
		base, tile int64
	}{
		{"gpt-4o-mini", 2833, 5667},
		{"computer-use-preview", 65, 129},
		{"gpt-5-chat-latest", 70, 140},
		{"o1", 75, 150}, {"o3", 75, 150},
		{"gpt-4o", 85, 170}, {"chatgpt-4o", 85, 170}, {"gpt-4.1", 85, 170}, {"gpt-4.5", 85, 170}, {"gpt-4-turbo", 85, 170},
	}
	for _, t := range tiles {
		if strings.HasPrefix(base, t.prefix) {
			return imageFamily{base: t.base, tile: t.tile, known: true}
		}
	}
	if base == "gpt-5" || strings.HasPrefix(base, "gpt-5-20") {
		return imageFamily{base: 70, tile: 140, known: true}
	}
	if strings.HasPrefix(base, "gpt-5") {
		return imageFamily{base: 70, tile: 140} // later gpt-5.x: assumed like gpt-5
	}
	return imageFamily{base: 85, tile: 170}
}

// tileTokens applies the tile rule to a w×h image at detail "high".
func tileTokens(f imageFamily, w, h float64) int64 {
	if w > 2048 || h > 2048 {
		s := 2048 / math.Max(w, h)
		w, h = w*s, h*s
	}
	if m := math.Min(w, h); m > 768 {
		s := 768 / m
		w, h = w*s, h*s
	}
	tiles := ceilEps(w/512) * ceilEps(h/512)
	return f.base + f.tile*tiles
}

// patchTokens applies the 32-px patch rule.
func patchTokens(f imageFamily, w, h float64) int64 {
	const maxPatches = 1536
	patches := ceilEps(w/32) * ceilEps(h/32)
	if patches > maxPatches {
		r := math.Sqrt(32 * 32 * maxPatches / (w * h))
		r *= math.Min(math.Floor(w*r/32)/(w*r/32), math.Floor(h*r/32)/(h*r/32))
		patches = ceilEps(w*r/32) * ceilEps(h*r/32)
		if patches > maxPatches {
			patches = maxPatches
		}
	}
	return int64(math.Ceil(float64(patches) * f.mult))
}

// ceilEps is math.Ceil tolerant of float noise (44.0000000001 → 44).
func ceilEps(x float64) int64 { return int64(math.Ceil(x - 1e-9)) }

// ImageTokens returns the input tokens of one w×h image for model (a
// registry id or name) at detail ("low", "high", "auto" = high), and
// whether the model's family is published (false: gpt-4o's rules assumed).
func ImageTokens(model string, w, h int, detail string) (tokens int64, known bool) {
	f := imageFamilyOf(model)
	return imageTokens(f, float64(w), float64(h), detail), f.known
}

func imageTokens(f imageFamily, w, h float64, detail string) int64 {
	if w <= 0 || h <= 0 {
		w, h = AssumedImageWidth, AssumedImageHeight
	}
	if f.patch {
		return patchTokens(f, w, h)
	}
	if detail == "low" {
		return f.base
	}
	return tileTokens(f, w, h)
}

func (r *run) image(where, url, detail string) int64 {
	switch detail {
	case "low", "high", "auto":
	default:
		r.problem(Error, CodeMessageInvalid, "%s: detail %q must be \"low\", \"high\" or \"auto\"", where, detail)
		detail = "auto"
	}
	f := imageFamilyOf(r.base)
	if !f.known {
		r.estimate("image tokens for this model family (gpt-4o's rules assumed)")
	}
	if f.patch {
		r.estimate("image tokens of patch-based models (published multiplier)")
	}
	if detail == "auto" {
		r.estimate("image detail \"auto\" counted as \"high\"")
	}
	if detail == "low" && !f.patch {
		return f.base
	}
	w, h, ok := dataURLSize(url)
	if !ok {
		if !r.imgNoted {
			r.imgNoted = true
			what := "a remote image URL"
			if strings.HasPrefix(url, "data:") {
				what = "an unreadable data-URL image"
			} else if url == "" {
				what = "an uploaded image file"
			}
			r.problem(Note, CodeImageSizeAssumed, "%s: %s has no size offline; counted as %d×%d at detail %q", where, what, AssumedImageWidth, AssumedImageHeight, detail)
		}
		r.estimate("image size assumed")
		w, h = AssumedImageWidth, AssumedImageHeight
	}
	return imageTokens(f, float64(w), float64(h), detail)
}

// dataURLSize reads the pixel size of a base64 data-URL image from its
// header, decoding only the bytes the header needs.
func dataURLSize(url string) (w, h int, ok bool) {
	if !strings.HasPrefix(url, "data:") {
		return 0, 0, false
	}
	comma := strings.IndexByte(url, ',')
	if comma < 0 || !strings.HasSuffix(url[:comma], ";base64") {
		return 0, 0, false
	}
	payload := url[comma+1:]
	newReader := func() io.Reader {
		return base64.NewDecoder(base64.StdEncoding, strings.NewReader(payload))
	}
	if cfg, _, err := image.DecodeConfig(newReader()); err == nil {
		return cfg.Width, cfg.Height, cfg.Width > 0 && cfg.Height > 0
	}
	var hdr [30]byte
	if _, err := io.ReadFull(newReader(), hdr[:]); err != nil {
		return 0, 0, false
	}
	return webpSize(hdr[:])
}

// webpSize parses a WebP RIFF header (VP8X, VP8 or VP8L chunk; Google's
// "WebP Container Specification").
func webpSize(b []byte) (w, h int, ok bool) {
	if len(b) < 30 || string(b[0:4]) != "RIFF" || string(b[8:12]) != "WEBP" {
		return 0, 0, false
	}
	le24 := func(p []byte) int { return int(p[0]) | int(p[1])<<8 | int(p[2])<<16 }
	switch string(b[12:16]) {
	case "VP8X":
		return 1 + le24(b[24:27]), 1 + le24(b[27:30]), true
	case "VP8 ":
		return int(binary.LittleEndian.Uint16(b[26:28]) & 0x3fff), int(binary.LittleEndian.Uint16(b[28:30]) & 0x3fff), true
	case "VP8L":
		if b[20] != 0x2f {
			return 0, 0, false
		}
		v := binary.LittleEndian.Uint32(b[21:25])
		return int(v&0x3fff) + 1, int((v>>14)&0x3fff) + 1, true
	}
	return 0, 0, false
}
