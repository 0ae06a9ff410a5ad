package cipher

import (
	"bytes"
	"fmt"
	"testing"
)

// Benchmarks use the plan defaults (random per-value IVs, versioned keys) and
// the value sizes of SPEC §8: a ~25-byte e-mail and a ~200-byte note.
var benchSizes = []int{25, 256}

func benchColumns(b *testing.B) map[Suite]*Column {
	b.Helper()
	cols := make(map[Suite]*Column)
	for _, s := range Suites() {
		cols[s] = newTestColumn(b, combo{p: Params{Suite: s, IV: IVField, Versioned: true}}, map[uint16][]byte{1: testKey(s, 1)}, 1)
	}
	return cols
}

func BenchmarkEncrypt(b *testing.B) {
	cols := benchColumns(b)
	for _, s := range Suites() {
		for _, n := range benchSizes {
			b.Run(fmt.Sprintf("%s/%dB", s, n), func(b *testing.B) {
				col, p := cols[s], bytes.Repeat([]byte{'a'}, n)
				b.ReportAllocs()
				b.SetBytes(int64(n))
				for b.Loop() {
					if _, _, err := col.Encrypt(p); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func BenchmarkDecrypt(b *testing.B) {
	cols := benchColumns(b)
	for _, s := range Suites() {
		for _, n := range benchSizes {
			b.Run(fmt.Sprintf("%s/%dB", s, n), func(b *testing.B) {
				col := cols[s]
				ct, iv, err := col.Encrypt(bytes.Repeat([]byte{'a'}, n))
				if err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				b.SetBytes(int64(n))
				for b.Loop() {
					if _, err := col.Decrypt(ct, iv); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
