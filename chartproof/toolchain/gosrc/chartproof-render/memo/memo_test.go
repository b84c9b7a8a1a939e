package memo

import "testing"

func TestBoundedForgetsEverythingPastItsBound(t *testing.T) {
	m := New[string, int](10)
	m.Put("a", 1, 4)
	m.Put("b", 2, 4)
	if v, ok := m.Get("a"); !ok || v != 1 || m.Len() != 2 {
		t.Fatalf("under the bound: a=%d %v, %d entries", v, ok, m.Len())
	}
	m.Put("c", 3, 4) // 12 > 10: a and b are forgotten
	if _, ok := m.Get("a"); ok || m.Len() != 1 {
		t.Fatalf("past the bound a is still kept (%d entries)", m.Len())
	}
	if v, ok := m.Get("c"); !ok || v != 3 {
		t.Fatalf("the entry put past the bound is not kept: %d %v", v, ok)
	}
}
