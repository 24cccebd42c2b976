package extsort

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestSorterStableAcrossRuns(t *testing.T) {
	type kv struct{ k, v uint64 }
	s := New(t.TempDir(), 16,
		func(b []byte, e kv) {
			copy(b, fmt.Appendf(nil, "%08x%08x", e.k, e.v))
		},
		func(b []byte) kv {
			var e kv
			fmt.Sscanf(string(b), "%08x%08x", &e.k, &e.v)
			return e
		},
		func(a, b kv) int { return cmp.Compare(a.k, b.k) })
	s.Max = 13
	defer s.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	var want []kv
	for i := 0; i < 1000; i++ {
		e := kv{rng.Uint64N(50), uint64(i)}
		want = append(want, e)
		if err := s.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	slices.SortStableFunc(want, func(a, b kv) int { return cmp.Compare(a.k, b.k) })
	var got []kv
	if err := s.Each(func(e kv) error { got = append(got, e); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(s.runs) < 10 || !slices.Equal(got, want) {
		t.Fatalf("%d runs; sorted differently", len(s.runs))
	}
}

func TestSpoolKeepsOrder(t *testing.T) {
	s, err := NewSpool(t.TempDir(), 8, func(b []byte, v uint64) { binary.LittleEndian.PutUint64(b, v) }, binary.LittleEndian.Uint64)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := uint64(0); i < 100000; i++ {
		if err := s.Add(i * 7); err != nil {
			t.Fatal(err)
		}
	}
	var i uint64
	err = s.Each(func(v uint64) error {
		if v != i*7 {
			return fmt.Errorf("record %d is %d", i, v)
		}
		i++
		return nil
	})
	if err != nil || i != 100000 {
		t.Fatalf("%v after %d records", err, i)
	}
}
