package dataio

import (
	"errors"
	"fmt"
	"strconv"
)

// parsePyLiteral parses the small subset of Python literal syntax that NumPy
// writes in .npy headers: dicts, tuples, lists, quoted strings, integers
// (with an optional Python 2 "L" suffix), True, False and None. Dicts come
// back as map[string]any, tuples and lists as []any, integers as int64.
func parsePyLiteral(s string) (any, error) {
	p := &pyParser{s: s}
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	if p.i != len(p.s) {
		return nil, fmt.Errorf("trailing text at offset %d", p.i)
	}
	return v, nil
}

type pyParser struct {
	s string
	i int
}

const maxPyDepth = 16

var errPyEOF = errors.New("unexpected end of header")

func (p *pyParser) skipSpace() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *pyParser) value(depth int) (any, error) {
	if depth > maxPyDepth {
		return nil, errors.New("header nested too deeply")
	}
	p.skipSpace()
	if p.i >= len(p.s) {
		return nil, errPyEOF
	}
	switch c := p.s[p.i]; {
	case c == '{':
		return p.dict(depth)
	case c == '(':
		return p.seq(depth, ')')
	case c == '[':
		return p.seq(depth, ']')
	case c == '\'' || c == '"':
		return p.str()
	case c == '-' || c == '+' || (c >= '0' && c <= '9'):
		return p.int()
	default:
		start := p.i
		for p.i < len(p.s) && isIdentByte(p.s[p.i]) {
			p.i++
		}
		switch word := p.s[start:p.i]; word {
		case "True":
			return true, nil
		case "False":
			return false, nil
		case "None":
			return nil, nil
		case "":
			return nil, fmt.Errorf("unexpected %q at offset %d", c, start)
		default:
			return nil, fmt.Errorf("unexpected %q at offset %d", word, start)
		}
	}
}

func isIdentByte(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func (p *pyParser) int() (any, error) {
	start := p.i
	if p.s[p.i] == '-' || p.s[p.i] == '+' {
		p.i++
	}
	for p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
		p.i++
	}
	text := p.s[start:p.i]
	if p.i < len(p.s) && (p.s[p.i] == 'L' || p.s[p.i] == 'l') {
		p.i++
	}
	v, err := strconv.ParseInt(text, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("bad integer %q", text)
	}
	return v, nil
}

func (p *pyParser) str() (any, error) {
	q := p.s[p.i]
	p.i++
	var out []byte
	for p.i < len(p.s) {
		c := p.s[p.i]
		p.i++
		switch c {
		case q:
			return string(out), nil
		case '\\':
			if p.i >= len(p.s) {
				return nil, errPyEOF
			}
			// Simple escapes only; NumPy headers never need more.
			out = append(out, p.s[p.i])
			p.i++
		default:
			out = append(out, c)
		}
	}
	return nil, errPyEOF
}

func (p *pyParser) seq(depth int, end byte) (any, error) {
	p.i++ // opening bracket
	out := []any{}
	for {
		p.skipSpace()
		if p.i >= len(p.s) {
			return nil, errPyEOF
		}
		if p.s[p.i] == end {
			p.i++
			return out, nil
		}
		v, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
		p.skipSpace()
		if p.i >= len(p.s) {
			return nil, errPyEOF
		}
		switch p.s[p.i] {
		case ',':
			p.i++
		case end:
		default:
			return nil, fmt.Errorf("expected ',' or %q at offset %d", end, p.i)
		}
	}
}

func (p *pyParser) dict(depth int) (any, error) {
	p.i++ // '{'
	out := map[string]any{}
	for {
		p.skipSpace()
		if p.i >= len(p.s) {
			return nil, errPyEOF
		}
		if p.s[p.i] == '}' {
			p.i++
			return out, nil
		}
		k, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		key, ok := k.(string)
		if !ok {
			return nil, fmt.Errorf("non-string dict key %v", k)
		}
		p.skipSpace()
		if p.i >= len(p.s) || p.s[p.i] != ':' {
			return nil, fmt.Errorf("expected ':' at offset %d", p.i)
		}
		p.i++
		v, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		if _, dup := out[key]; dup {
			return nil, fmt.Errorf("duplicate key %q", key)
		}
		out[key] = v
		p.skipSpace()
		if p.i >= len(p.s) {
			return nil, errPyEOF
		}
		switch p.s[p.i] {
		case ',':
			p.i++
		case '}':
		default:
			return nil, fmt.Errorf("expected ',' or '}' at offset %d", p.i)
		}
	}
}
