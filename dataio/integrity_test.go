package dataio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
)

// TestNPZBadCRC: a member whose data does not match its CRC-32 is rejected, whether it is
// stored (a flipped data byte) or deflated (a wrong CRC in the central directory); numpy's
// np.load raises "Bad CRC-32" on both. The unmodified archives read fine (control).
func TestNPZBadCRC(t *testing.T) {
	for _, c := range []struct{ file, member string }{{"single.npz", ""}, {"two_deflated.npz", "X"}} {
		good, err := os.ReadFile("testdata/" + c.file)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := readNPZ(bytes.NewReader(good), int64(len(good)), c.file, c.member); err != nil {
			t.Fatalf("%s: the good archive fails: %v", c.file, err)
		}
		bad := slices.Clone(good)
		if c.member == "" {
			// Stored: flip a bit in the last byte of the array's data (the member ends
			// where the central directory starts).
			cd := bytes.Index(bad, []byte("PK\x01\x02"))
			bad[cd-1] ^= 1
		} else {
			// Deflated: change the first member's CRC-32 in the central directory entry
			// (offset 16 of "PK\x01\x02"), the value archive/zip checks.
			cd := bytes.Index(bad, []byte("PK\x01\x02"))
			crc := binary.LittleEndian.Uint32(bad[cd+16:])
			binary.LittleEndian.PutUint32(bad[cd+16:], crc^0xdeadbeef)
		}
		_, err = readNPZ(bytes.NewReader(bad), int64(len(bad)), c.file, c.member)
		if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "CRC-32") || !strings.Contains(err.Error(), c.file) {
			t.Errorf("%s with a bad CRC: got %v", c.file, err)
		}
	}
}

// TestCSVFirstRowRule: the first row is a header only when none of its fields is a number,
// data when all are, and an error (line 1, the first text field) when it mixes them; a
// UTF-8 byte order mark is skipped, so it neither hides a number nor becomes part of a name.
func TestCSVFirstRowRule(t *testing.T) {
	cases := []struct {
		name, in string
		header   []string
		rows     int
		errCol   int // > 0: a *ParseError at line 1, this column
	}{
		{"names", "a,b\n1,2\n", []string{"a", "b"}, 1, 0},
		{"numbers", "1,2\n3,4\n", nil, 2, 0},
		{"BOM before numbers", "\xef\xbb\xbf1,2\n3,4\n", nil, 2, 0},
		{"BOM before names", "\xef\xbb\xbfa,b\n1,2\n", []string{"a", "b"}, 1, 0},
		{"typo in the first data row", "1,2o\n3,4\n", nil, 0, 2},
		{"number among the names", "x0,1,x2\n1,2,3\n", nil, 0, 1},
		{"empty field among numbers", "1,,3\n4,5,6\n", nil, 0, 2},
		{"quoted names", "\"a\",\" b \"\n1,2\n", []string{"a", "b"}, 1, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := ReadCSV(strings.NewReader(c.in), "in.csv")
			if c.errCol > 0 {
				var pe *ParseError
				if !errors.As(err, &pe) || pe.Line != 1 || pe.Column != c.errCol || !errors.Is(err, ErrNotNumber) {
					t.Fatalf("got %v, want a ParseError at line 1 column %d", err, c.errCol)
				}
				if !strings.Contains(err.Error(), "header must be all names") {
					t.Errorf("message %q does not explain the rule", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(m.Header, c.header) || m.Rows != c.rows {
				t.Errorf("header %q, %d rows; want %q, %d", m.Header, m.Rows, c.header, c.rows)
			}
		})
	}
}
