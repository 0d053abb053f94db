package imapcheck

import (
	"fmt"
	"strings"

	"github.com/idlemux/idlemux/internal/imapframe"
)

// response = continue-req / response-data / response-tagged (RFC 3501 9).
func (p *parser) response(r *Response) error {
	switch p.peek() {
	case '+':
		p.i++
		r.Tag = "+"
		if p.peek() == ' ' {
			p.i++
			r.Text = p.text()
		}
		return p.crlf()
	case '*':
		p.i++
		r.Tag = "*"
		if err := p.expect(" "); err != nil {
			return err
		}
		return p.untagged(r)
	}
	tag, err := p.atom("]")
	if err != nil {
		return err
	}
	if strings.Contains(tag, "+") {
		return fmt.Errorf("%w: tag with '+'", errSyntax)
	}
	r.Tag = tag
	if err := p.expect(" "); err != nil {
		return err
	}
	name, err := p.atom("")
	if err != nil {
		return err
	}
	r.Name = strings.ToUpper(name)
	switch r.Name {
	case "OK", "NO", "BAD":
	default:
		return fmt.Errorf("%w: tagged %q", errSyntax, name)
	}
	return p.respText(r)
}

// respText reads SP ["[" resp-text-code "]" [SP]] text CRLF.
func (p *parser) respText(r *Response) error {
	if p.peek() == '\r' {
		return p.crlf() // lenient: no text at all
	}
	if err := p.expect(" "); err != nil {
		return err
	}
	if p.peek() == '[' {
		p.i++
		code, err := p.atom("")
		if err != nil {
			return err
		}
		r.Code = strings.ToUpper(code)
		if p.peek() == ' ' {
			p.i++
			start := p.i
			for p.i < len(p.b) && p.b[p.i] != ']' && p.b[p.i] != '\r' && p.b[p.i] != '\n' {
				p.i++
			}
			r.CodeArg = string(p.b[start:p.i])
		}
		if err := p.expect("]"); err != nil {
			return err
		}
		if p.peek() == ' ' {
			p.i++
		}
	}
	r.Text = p.text()
	return p.crlf()
}

// untagged reads what follows "* ".
func (p *parser) untagged(r *Response) error {
	if c := p.peek(); c >= '0' && c <= '9' {
		n, err := p.number()
		if err != nil {
			return err
		}
		if n > 1<<32-1 {
			return fmt.Errorf("%w: number past 2^32-1", errSyntax)
		}
		r.Num, r.HasNum = uint32(n), true
		if err := p.expect(" "); err != nil {
			return err
		}
		name, err := p.atom("")
		if err != nil {
			return err
		}
		r.Name = strings.ToUpper(name)
		switch r.Name {
		case "EXISTS", "RECENT":
		case "EXPUNGE", "FETCH":
			if n == 0 {
				return fmt.Errorf("%w: %s of message 0", errSyntax, r.Name)
			}
			if r.Name == "FETCH" {
				if err := p.expect(" "); err != nil {
					return err
				}
				if err := p.msgAtt(r); err != nil {
					return err
				}
			}
		default:
			return fmt.Errorf("%w: numbered response %q", errSyntax, name)
		}
		return p.crlf()
	}
	name, err := p.atom("")
	if err != nil {
		return err
	}
	r.Name = strings.ToUpper(name)
	switch r.Name {
	case "OK", "NO", "BAD", "BYE", "PREAUTH":
		return p.respText(r)
	case "FLAGS":
		if err := p.expect(" "); err != nil {
			return err
		}
		flags, err := p.flagList()
		if err != nil {
			return err
		}
		r.Flags = flags
		return p.crlf()
	case "SEARCH":
		return p.search(r)
	}
	for p.peek() == ' ' {
		p.i++
		v, err := p.value()
		if err != nil {
			return err
		}
		r.Args = append(r.Args, v)
	}
	return p.crlf()
}

// search reads *(SP nz-number) [SP "(MODSEQ" SP number ")"] CRLF.
func (p *parser) search(r *Response) error {
	for p.peek() == ' ' {
		p.i++
		if p.peek() == '(' {
			if err := p.expect("(MODSEQ "); err != nil {
				return err
			}
			if _, err := p.number(); err != nil {
				return err
			}
			if err := p.expect(")"); err != nil {
				return err
			}
			break
		}
		n, err := p.nz()
		if err != nil {
			return err
		}
		r.Nums = append(r.Nums, n)
	}
	return p.crlf()
}

// flagList reads "(" [flag *(SP flag)] ")"; flag is "\" atom or atom,
// "\*" only as in PERMANENTFLAGS.
func (p *parser) flagList() ([]string, error) {
	if err := p.expect("("); err != nil {
		return nil, err
	}
	flags := []string{}
	for p.peek() != ')' {
		if len(flags) > 0 {
			if err := p.expect(" "); err != nil {
				return nil, err
			}
		}
		f, err := p.flag()
		if err != nil {
			return nil, err
		}
		flags = append(flags, f)
	}
	p.i++
	return flags, nil
}

func (p *parser) flag() (string, error) {
	if p.peek() != '\\' {
		return p.atom("")
	}
	p.i++
	if p.peek() == '*' {
		p.i++
		return `\*`, nil
	}
	a, err := p.atom("")
	return `\` + a, err
}

// msgAtt reads "(" name SP value *(SP name SP value) ")" (RFC 3501 7.4.2).
func (p *parser) msgAtt(r *Response) error {
	if err := p.expect("("); err != nil {
		return err
	}
	for {
		name, err := p.attName()
		if err != nil {
			return err
		}
		if err := p.expect(" "); err != nil {
			return err
		}
		var v Value
		switch name {
		case "FLAGS":
			flags, ferr := p.flagList()
			if ferr != nil {
				return ferr
			}
			v.Kind = KindList
			for _, f := range flags {
				v.List = append(v.List, Value{Kind: KindAtom, Atom: f})
			}
		case "UID", "RFC822.SIZE", "MODSEQ":
			if name == "MODSEQ" {
				v, err = p.value()
				break
			}
			var n uint32
			n, err = p.nz()
			v = Value{Kind: KindNumber, Num: uint64(n)}
		default:
			v, err = p.value()
		}
		if err != nil {
			return err
		}
		r.Items = append(r.Items, FetchItem{Name: name, Value: v})
		if p.peek() == ')' {
			p.i++
			return nil
		}
		if err := p.expect(" "); err != nil {
			return err
		}
	}
}

// attName reads an item name, its "[section]" (anything but "]" and CR
// LF) and "<origin>" as sent.
func (p *parser) attName() (string, error) {
	start := p.i
	for p.i < len(p.b) && p.b[p.i] != '[' && p.b[p.i] < 0x80 && imapframe.IsAtomChar(p.b[p.i]) {
		p.i++
	}
	if p.i == start {
		return "", fmt.Errorf("%w: want an item name", errSyntax)
	}
	if p.peek() == '[' {
		for p.i < len(p.b) && p.b[p.i] != ']' {
			if p.b[p.i] == '\r' || p.b[p.i] == '\n' {
				return "", fmt.Errorf("%w: line ends in a section", errSyntax)
			}
			p.i++
		}
		if err := p.expect("]"); err != nil {
			return "", err
		}
		if p.peek() == '<' {
			p.i++
			if _, err := p.number(); err != nil {
				return "", err
			}
			if err := p.expect(">"); err != nil {
				return "", err
			}
		}
	}
	return strings.ToUpper(string(p.b[start:p.i])), nil
}

// value reads an atom, number, NIL, string, literal (literal8 too) or a
// parenthesized list of them.
func (p *parser) value() (Value, error) {
	switch c := p.peek(); {
	case c == '(':
		p.i++
		v := Value{Kind: KindList}
		for p.peek() != ')' {
			if len(v.List) > 0 {
				if err := p.expect(" "); err != nil {
					return v, err
				}
			}
			e, err := p.value()
			if err != nil {
				return v, err
			}
			v.List = append(v.List, e)
		}
		p.i++
		return v, nil
	case c == '"':
		return p.quoted()
	case c == '{' || c == '~':
		return p.literal()
	case c == '\\':
		f, err := p.flag()
		return Value{Kind: KindAtom, Atom: f}, err
	}
	start := p.i
	a, err := p.atom("]")
	if err != nil {
		return Value{}, err
	}
	if strings.EqualFold(a, "NIL") {
		return Value{Kind: KindNil}, nil
	}
	if strings.Trim(a, "0123456789") == "" {
		p.i = start
		n, err := p.number()
		if err == nil && p.i-start != len(a) {
			err = fmt.Errorf("%w: number too long", errSyntax)
		}
		return Value{Kind: KindNumber, Num: n}, err
	}
	return Value{Kind: KindAtom, Atom: a}, nil
}

func (p *parser) quoted() (Value, error) {
	p.i++
	var s []byte
	for p.i < len(p.b) {
		c := p.b[p.i]
		p.i++
		switch c {
		case '"':
			return Value{Kind: KindString, Str: s}, nil
		case '\\':
			if p.i >= len(p.b) || (p.b[p.i] != '"' && p.b[p.i] != '\\') {
				return Value{}, fmt.Errorf("%w: bad quoted escape", errSyntax)
			}
			s = append(s, p.b[p.i])
			p.i++
		case '\r', '\n', 0:
			return Value{}, fmt.Errorf("%w: control byte in a quoted string", errSyntax)
		default:
			s = append(s, c)
		}
	}
	return Value{}, fmt.Errorf("%w: unterminated quoted string", errSyntax)
}

// literal reads "{n}" CRLF and n bytes, or literal8 "~{n}" (RFC 3516).
func (p *parser) literal() (Value, error) {
	binary := p.peek() == '~'
	if binary {
		p.i++
	}
	if err := p.expect("{"); err != nil {
		return Value{}, err
	}
	n, err := p.number()
	if err != nil {
		return Value{}, err
	}
	if err := p.expect("}\r\n"); err != nil {
		return Value{}, err
	}
	if n > uint64(len(p.b)-p.i) {
		return Value{}, fmt.Errorf("%w: literal past the end", errSyntax)
	}
	s := p.b[p.i : p.i+int(n)]
	if !binary && strings.IndexByte(string(s), 0) >= 0 {
		return Value{}, fmt.Errorf("%w: NUL in a literal (RFC 3501 4.3)", errSyntax)
	}
	p.i += int(n)
	return Value{Kind: KindString, Str: s}, nil
}
