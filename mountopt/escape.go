package mountopt

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Quoting rules for -o strings, shared by every option:
//
//   - options are separated by commas that are neither escaped nor inside
//     double quotes;
//   - inside a value, a backslash escapes '\', ':', ',' and '"'; libfuse's
//     octal form \NNN (e.g. \054 for a comma) is accepted too;
//   - double quotes group text (so context="a:b,c" is one option) and are
//     removed from path and name values; kernel pass-through options are
//     handed on exactly as given, quotes included.

// splitOptions splits an -o string on commas outside double quotes and not
// escaped. Tokens keep their quotes and escapes; empty tokens are dropped.
func splitOptions(s string) []string {
	var out []string
	start, inQuote := 0, false
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++ // the escaped byte is never a separator; a trailing backslash is reported by decodeValue
		case '"':
			inQuote = !inQuote
		case ',':
			if !inQuote {
				if i > start {
					out = append(out, s[start:i])
				}
				start = i + 1
			}
		}
	}
	if start < len(s) {
		out = append(out, s[start:])
	}
	return out
}

// decodeValue removes the quotes and escapes of an option value. If sep is
// not 0, v is also split on every sep that is neither escaped nor quoted.
// Errors do not name the option: the caller prefixes it.
func decodeValue(v string, sep byte) ([]string, error) {
	var parts []string
	var cur strings.Builder
	inQuote := false
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c == '\\':
			if i+1 == len(v) {
				return nil, fmt.Errorf("trailing backslash in %q", v)
			}
			switch n := v[i+1]; {
			case n == '\\' || n == ':' || n == ',' || n == '"':
				cur.WriteByte(n)
				i++
			case isOctalEscape(v[i+1:]):
				b := (v[i+1]-'0')<<6 | (v[i+2]-'0')<<3 | (v[i+3] - '0')
				if b == 0 {
					return nil, fmt.Errorf("bad escape %q in %q", v[i:i+4], v)
				}
				cur.WriteByte(b)
				i += 3
			default:
				_, size := utf8.DecodeRuneInString(v[i+1:])
				return nil, fmt.Errorf("bad escape %q in %q", v[i:i+1+size], v)
			}
		case c == '"':
			inQuote = !inQuote
		case sep != 0 && c == sep && !inQuote:
			parts = append(parts, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
	}
	if inQuote {
		return nil, fmt.Errorf("unterminated quote in %q", v)
	}
	return append(parts, cur.String()), nil
}

// isOctalEscape reports whether s starts with the three digits of a \NNN
// escape (000 to 377).
func isOctalEscape(s string) bool {
	return len(s) >= 3 &&
		s[0] >= '0' && s[0] <= '3' &&
		s[1] >= '0' && s[1] <= '7' &&
		s[2] >= '0' && s[2] <= '7'
}

// EscapeValue escapes s for use as an option value, or as one entry of
// lowerdir=: it backslash-escapes '\', ':', ',' and '"'. ParseArgs turns the
// result back into s.
func EscapeValue(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\', ':', ',', '"':
			b.WriteByte('\\')
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
