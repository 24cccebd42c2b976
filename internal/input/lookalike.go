package input

import (
	"fmt"
	"strings"
	"unicode"
)

// confusables maps characters that look like an ASCII one to it: hyphens
// and dashes, Cyrillic and Greek letters shaped like Latin ones (the
// common cases of Unicode's confusables.txt, UTS #39), and precomposed
// accented Latin letters to their base letter (so NFC "é" and NFD
// "e"+U+0301 fold alike, combining marks being dropped). Fullwidth ASCII
// (U+FF01–U+FF5E) is handled in foldID.
var confusables = map[rune]rune{
	// hyphens, dashes, minus
	'\u2010': '-', '\u2011': '-', '\u2012': '-', '\u2013': '-', '\u2014': '-', '\u2015': '-',
	'\u2212': '-', '\uFE58': '-', '\uFE63': '-', '\u00AD': '-',
	// Cyrillic
	'а': 'a', 'в': 'b', 'е': 'e', 'к': 'k', 'м': 'm', 'н': 'h', 'о': 'o', 'р': 'p', 'с': 'c', 'т': 't',
	'у': 'y', 'х': 'x', 'і': 'i', 'ј': 'j', 'ѕ': 's', 'ԁ': 'd', 'ԛ': 'q', 'ԝ': 'w', 'ӏ': 'l',
	'А': 'A', 'В': 'B', 'Е': 'E', 'К': 'K', 'М': 'M', 'Н': 'H', 'О': 'O', 'Р': 'P', 'С': 'C', 'Т': 'T',
	'У': 'Y', 'Х': 'X', 'І': 'I', 'Ј': 'J', 'Ѕ': 'S', 'Ԁ': 'D', 'Ԛ': 'Q', 'Ԝ': 'W',
	// Greek
	'α': 'a', 'β': 'b', 'γ': 'y', 'ε': 'e', 'ι': 'i', 'κ': 'k', 'ν': 'v', 'ο': 'o', 'ρ': 'p', 'τ': 't', 'υ': 'u', 'χ': 'x',
	'Α': 'A', 'Β': 'B', 'Ε': 'E', 'Ζ': 'Z', 'Η': 'H', 'Ι': 'I', 'Κ': 'K', 'Μ': 'M', 'Ν': 'N', 'Ο': 'O',
	'Ρ': 'P', 'Τ': 'T', 'Υ': 'Y', 'Χ': 'X',
	// Latin look-alikes
	'ı': 'i', 'ℓ': 'l', '×': 'x',
}

func init() {
	// Precomposed Latin-1 and Latin Extended-A letters → base letter.
	groups := map[rune]string{
		'a': "àáâãäåāăą", 'c': "çćĉċč", 'd': "ď", 'e': "èéêëēĕėęě", 'g': "ĝğġģ", 'h': "ĥ", 'i': "ìíîïĩīĭįİ",
		'j': "ĵ", 'k': "ķ", 'l': "ĺļľ", 'n': "ñńņňŉ", 'o': "òóôõöøōŏő", 'r': "ŕŗř", 's': "śŝşš", 't': "ţť",
		'u': "ùúûüũūŭůűų", 'w': "ŵ", 'y': "ýÿŷ", 'z': "źżž",
		'A': "ÀÁÂÃÄÅĀĂĄ", 'C': "ÇĆĈĊČ", 'D': "Ď", 'E': "ÈÉÊËĒĔĖĘĚ", 'G': "ĜĞĠĢ", 'H': "Ĥ", 'I': "ÌÍÎÏĨĪĬĮ",
		'J': "Ĵ", 'K': "Ķ", 'L': "ĹĻĽ", 'N': "ÑŃŅŇ", 'O': "ÒÓÔÕÖØŌŎŐ", 'R': "ŔŖŘ", 'S': "ŚŜŞŠ", 'T': "ŢŤ",
		'U': "ÙÚÛÜŨŪŬŮŰŲ", 'W': "Ŵ", 'Y': "ÝŶŸ", 'Z': "ŹŻŽ",
	}
	for base, list := range groups {
		for _, c := range list {
			confusables[c] = base
		}
	}
}

// foldID is the form under which two custom_ids "look alike": format
// characters (Unicode Cf: zero-width space/joiners, BOM, soft hyphen,
// bidi marks) and combining marks dropped, confusables mapped to ASCII,
// fullwidth forms to ASCII, every space character to ' ', surrounding
// spaces trimmed, and lower case.
func foldID(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			ascii = false
			break
		}
	}
	if ascii {
		return strings.ToLower(strings.TrimSpace(s))
	}
	var b strings.Builder
	for _, c := range s {
		switch {
		case unicode.Is(unicode.Cf, c) && c != '\u00AD' || unicode.Is(unicode.Mn, c):
			continue
		case unicode.IsSpace(c):
			b.WriteByte(' ')
			continue
		case c >= 0xFF01 && c <= 0xFF5E:
			c -= 0xFEE0
		}
		if m, ok := confusables[c]; ok {
			c = m
		}
		b.WriteRune(c)
	}
	return strings.ToLower(strings.TrimSpace(b.String()))
}

// idOddities describes what in id may make it look like another id:
// surrounding whitespace, invisible (format) characters, non-ASCII spaces,
// fullwidth forms, look-alike dashes, and (alone: only when the id also has
// ASCII letters, i.e. mixes scripts) look-alike Cyrillic/Greek letters and
// combining marks. "" when the id is plain.
func idOddities(id string, alone bool) string {
	mixed := false
	for _, c := range id {
		if c < 0x80 && unicode.IsLetter(c) {
			mixed = true
			break
		}
	}
	var parts []string
	if strings.TrimSpace(id) != id {
		parts = append(parts, "leading or trailing whitespace")
	}
	seen := map[string]bool{}
	for _, c := range id {
		var what string
		switch {
		case c == '\u00AD' || unicode.Is(unicode.Cf, c):
			what = fmt.Sprintf("an invisible character U+%04X", c)
		case unicode.Is(unicode.Mn, c) && !alone:
			what = fmt.Sprintf("a combining mark U+%04X (decomposed, NFD, text)", c)
		case c >= 0xFF01 && c <= 0xFF5E:
			what = fmt.Sprintf("a fullwidth character %q", c)
		case c >= 0x80 && unicode.IsSpace(c):
			what = fmt.Sprintf("a non-ASCII space U+%04X", c)
		default:
			if m, ok := confusables[c]; ok && !(c >= 0xC0 && c <= 0x17F) && (!alone || mixed || unicode.IsPunct(c) || c == '\u2212') {
				what = fmt.Sprintf("%q (U+%04X), which looks like %q", c, c, m)
			}
		}
		if what != "" && !seen[what] && len(parts) < 3 {
			seen[what] = true
			parts = append(parts, what)
		}
	}
	return strings.Join(parts, ", ")
}
