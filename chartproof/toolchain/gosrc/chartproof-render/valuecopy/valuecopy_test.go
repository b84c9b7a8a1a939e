package valuecopy

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/mitchellh/copystructure"
)

type values map[string]interface{} // a named map, as chartutil.Values is

type inner struct {
	Name   string
	Weight float64
}

type record struct {
	Exported   string
	hidden     string
	Shared     *inner `copy:"shallow"`
	Ignored    []int  `copy:"ignore"`
	Deep       *inner
	Any        interface{}
	Tags       map[string]string
	When       time.Time
	Fixed      [3]interface{}
	Nothing    *inner
	NoneOfThem []string
}

func withSpare() []interface{} {
	s := make([]interface{}, 2, 9)
	s[0], s[1] = "a", map[string]interface{}{"b": int64(1)}
	return s
}

// corpus: what helm and templates hand to Copy, and the odd shapes a generic copy must also get right.
func corpus(t *testing.T) map[string]interface{} {
	cases := map[string]interface{}{
		"plain tree": map[string]interface{}{"a": "x", "n": int64(3), "f": 1.5, "t": true, "nil": nil,
			"list":  []interface{}{"s", int64(1), nil, map[string]interface{}{"deep": []interface{}{}}},
			"empty": map[string]interface{}{}, "nilmap": map[string]interface{}(nil), "nilslice": []interface{}(nil)},
		"named map":            values{"global": map[string]interface{}{"x": 1}, "sub": values{"y": []interface{}{2}}},
		"nil named map":        values(nil),
		"nil plain map":        map[string]interface{}(nil),
		"nil slice":            []interface{}(nil),
		"slice with capacity":  withSpare(),
		"typed containers":     map[string]interface{}{"ss": []string{"a", "b"}, "ms": map[string]string{"k": "v"}, "mi": map[int]interface{}{1: "one", 2: nil}},
		"scalar string":        "text",
		"scalar int":           42,
		"scalar float":         2.5,
		"pointer to a struct":  &record{Exported: "e", hidden: "h", Shared: &inner{"s", 1}, Ignored: []int{1}, Deep: &inner{"d", 2}, Any: map[string]interface{}{"k": []interface{}{1}}, Tags: map[string]string{"a": "b"}, When: time.Date(2026, 12, 7, 1, 2, 3, 4, time.UTC), Fixed: [3]interface{}{1, "two", nil}},
		"a struct":             record{Exported: "only"},
		"time":                 time.Date(2020, 1, 2, 3, 4, 5, 6, time.FixedZone("x", 3600)),
		"interface to pointer": map[string]interface{}{"p": &inner{"p", 3}},
		"array":                [2]map[string]interface{}{{"a": 1}, nil},
	}
	cases["a generated tree, through JSON"] = throughJSON(t, generated(4))
	return cases
}

// generated: a values-like tree of the given depth, every kind of JSON value at each level.
func generated(depth int) map[string]interface{} {
	node := map[string]interface{}{"s": fmt.Sprint("level-", depth), "n": depth, "f": float64(depth) / 3, "b": depth%2 == 0, "z": nil}
	if depth > 0 {
		node["list"] = []interface{}{generated(depth - 1), "x", []interface{}{depth, nil}}
		node["map"] = generated(depth - 1)
	}
	return node
}

// throughJSON: the tree as a JSON decoder gives it (float64 numbers), the shape helm's YAML reader produces.
func throughJSON(t *testing.T, v interface{}) interface{} {
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var tree interface{}
	if err := json.Unmarshal(raw, &tree); err != nil {
		t.Fatal(err)
	}
	return tree
}

func TestCopyIsWhatCopystructureReturns(t *testing.T) {
	for name, in := range corpus(t) {
		t.Run(name, func(t *testing.T) {
			want, err := copystructure.Copy(in)
			if err != nil {
				t.Fatalf("copystructure: %v", err)
			}
			got, err := Copy(in)
			if err != nil {
				t.Fatalf("Copy: %v", err)
			}
			if reflect.TypeOf(got) != reflect.TypeOf(want) {
				t.Fatalf("type %T, copystructure gives %T", got, want)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("copy\n  %#v\ncopystructure gives\n  %#v", got, want)
			}
			sameShape(t, "copy", reflect.ValueOf(got), reflect.ValueOf(want))
			unshared(t, "copy", reflect.ValueOf(got), reflect.ValueOf(in))
		})
	}
}

// sameShape: what DeepEqual does not see, a slice's capacity, is copystructure's too.
func sameShape(t *testing.T, at string, got, want reflect.Value) {
	t.Helper()
	pairs(at, got, want, func(at string, a, b reflect.Value) {
		if a.Kind() == reflect.Slice && a.Cap() != b.Cap() {
			t.Errorf("%s: capacity %d, copystructure gives %d", at, a.Cap(), b.Cap())
		}
	})
}

// unshared: no map, slice or pointer of the copy is the original's (a shallow field excepted, on purpose).
func unshared(t *testing.T, at string, copied, original reflect.Value) {
	t.Helper()
	pairs(at, copied, original, func(at string, c, o reflect.Value) {
		switch c.Kind() {
		case reflect.Pointer, reflect.Map, reflect.Slice:
			if !c.IsNil() && !o.IsNil() && (c.Kind() != reflect.Slice || c.Cap() > 0) && c.Pointer() == o.Pointer() {
				t.Errorf("%s: the copy shares the original's %s", at, c.Kind())
			}
		}
	})
}

// pairs walks two values of the same shape side by side, calling visit on each pair it reaches: through
// interfaces and pointers, slice and array elements, map values (by the first value's keys) and exported
// struct fields other than shallow ones.
func pairs(at string, a, b reflect.Value, visit func(at string, a, b reflect.Value)) {
	if !a.IsValid() || !b.IsValid() {
		return
	}
	visit(at, a, b)
	switch a.Kind() {
	case reflect.Interface, reflect.Pointer:
		if !a.IsNil() && !b.IsNil() {
			pairs(at, a.Elem(), b.Elem(), visit)
		}
	case reflect.Slice, reflect.Array:
		for i := 0; i < a.Len() && i < b.Len(); i++ {
			pairs(fmt.Sprintf("%s[%d]", at, i), a.Index(i), b.Index(i), visit)
		}
	case reflect.Map:
		for _, k := range a.MapKeys() {
			pairs(fmt.Sprintf("%s[%v]", at, k), a.MapIndex(k), b.MapIndex(k), visit)
		}
	case reflect.Struct:
		for i := 0; i < a.NumField(); i++ {
			if f := a.Type().Field(i); f.IsExported() && f.Tag.Get(tagKey) != "shallow" {
				pairs(at+"."+f.Name, a.Field(i), b.Field(i), visit)
			}
		}
	}
}

func TestCopyOfUntypedNilPanicsAsCopystructures(t *testing.T) {
	for name, copy := range map[string]func(interface{}) (interface{}, error){"copystructure": copystructure.Copy, "valuecopy": Copy} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s.Copy(nil) did not panic", name)
				}
			}()
			_, _ = copy(nil)
		}()
	}
}

func BenchmarkCopy(b *testing.B) {
	tree := map[string]interface{}{}
	for i := 0; i < 200; i++ {
		tree[fmt.Sprint("k", i)] = map[string]interface{}{"a": []interface{}{"x", int64(i), map[string]interface{}{"b": true}}}
	}
	for name, copy := range map[string]func(interface{}) (interface{}, error){"copystructure": copystructure.Copy, "valuecopy": Copy} {
		b.Run(name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				_, _ = copy(tree)
			}
		})
	}
}
