// Package valuecopy deep-copies the values a chart render passes around: the trees of
// map[string]interface{}, []interface{} and scalars that YAML, JSON and --set give, walked with type
// switches, and any other Go value by reflection.
//
// Helm copies every chart's values on each render (chartutil's coalescing and dependency processing), and
// sprig's deepCopy copies what a template asks for, through github.com/mitchellh/copystructure, whose
// reflection walker made a fifth of chartproof-render's CPU time (a Go CPU profile of the adaptive render
// tier: 0.61 of 2.98 s). The renderer's go.mod replaces that module with ../copystructure, whose Copy is
// this Copy. What a copy holds is what copystructure.Copy returns for the same input, held to it by
// valuecopy_test.go: the same dynamic types (named ones such as chartutil.Values included), nil maps and
// slices stay nil of their type, slices keep their capacity, structs get their exported fields copied (a
// `copy:"shallow"` field assigned, a `copy:"ignore"` one left zero, unexported ones left zero),
// time.Time is kept as it is, and nothing in the copy shares a map, slice or pointer with the original.
package valuecopy

import (
	"reflect"
	"time"
)

const tagKey = "copy"

var timeType = reflect.TypeOf(time.Time{})

// Copy returns a deep copy of v. Like copystructure.Copy, it panics on an untyped nil.
func Copy(v interface{}) (interface{}, error) {
	if v == nil {
		_ = reflect.ValueOf(v).Type() // copystructure.Copy(nil) panics here too
	}
	return value(v), nil
}

// value copies one value of an interface{} slot: the plain tree by type switch, anything else by reflection.
func value(v interface{}) interface{} {
	switch t := v.(type) {
	case nil, string, bool, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, uintptr,
		float32, float64, complex64, complex128:
		return v
	case map[string]interface{}:
		return plainMap(t)
	case []interface{}:
		return plainSlice(t)
	}
	return reflected(reflect.ValueOf(v)).Interface()
}

func plainMap(m map[string]interface{}) map[string]interface{} {
	if m == nil {
		return nil
	}
	out := make(map[string]interface{}, len(m))
	for k, v := range m {
		out[k] = value(v)
	}
	return out
}

func plainSlice(s []interface{}) []interface{} {
	if s == nil {
		return nil
	}
	out := make([]interface{}, len(s), cap(s))
	for i, v := range s {
		out[i] = value(v)
	}
	return out
}

var anyType = reflect.TypeOf((*interface{})(nil)).Elem()

// reflected copies v into a new value of v's own type.
func reflected(v reflect.Value) reflect.Value {
	switch v.Kind() {
	case reflect.Invalid:
		return v
	case reflect.Interface:
		if v.IsNil() {
			return reflect.Zero(v.Type())
		}
		out := reflect.New(v.Type()).Elem()
		out.Set(reflected(v.Elem()))
		return out
	case reflect.Pointer:
		if v.IsNil() {
			return reflect.Zero(v.Type())
		}
		out := reflect.New(v.Type().Elem())
		out.Elem().Set(reflected(v.Elem()))
		return out
	case reflect.Map:
		if v.IsNil() {
			return reflect.Zero(v.Type())
		}
		out := reflect.MakeMapWithSize(v.Type(), v.Len())
		plainValues := v.Type().Elem() == anyType
		for it := v.MapRange(); it.Next(); {
			var elem reflect.Value
			if plainValues {
				elem = reflect.New(anyType).Elem()
				if inner := it.Value().Interface(); inner != nil {
					elem.Set(reflect.ValueOf(value(inner)))
				}
			} else {
				elem = reflected(it.Value())
			}
			out.SetMapIndex(reflected(it.Key()), elem)
		}
		return out
	case reflect.Slice:
		if v.IsNil() {
			return reflect.Zero(v.Type())
		}
		out := reflect.MakeSlice(v.Type(), v.Len(), v.Cap())
		for i := 0; i < v.Len(); i++ {
			out.Index(i).Set(reflected(v.Index(i)))
		}
		return out
	case reflect.Array:
		out := reflect.New(v.Type()).Elem()
		for i := 0; i < v.Len(); i++ {
			out.Index(i).Set(reflected(v.Index(i)))
		}
		return out
	case reflect.Struct:
		return structCopy(v)
	}
	// Scalars are values already; functions, channels and unsafe pointers are shared, as copystructure does.
	out := reflect.New(v.Type()).Elem()
	out.Set(v)
	return out
}

func structCopy(v reflect.Value) reflect.Value {
	out := reflect.New(v.Type()).Elem()
	if v.Type() == timeType {
		out.Set(v)
		return out
	}
	for i := 0; i < v.NumField(); i++ {
		field := v.Type().Field(i)
		if field.PkgPath != "" { // unexported: left zero
			continue
		}
		switch field.Tag.Get(tagKey) {
		case "ignore":
			continue
		case "shallow":
			out.Field(i).Set(v.Field(i))
			continue
		}
		out.Field(i).Set(reflected(v.Field(i)))
	}
	return out
}
