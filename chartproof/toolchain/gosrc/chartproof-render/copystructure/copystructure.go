// Package copystructure stands in for github.com/mitchellh/copystructure in chartproof-render's build
// (its go.mod's replace): the one function helm and sprig call, Copy, done by chartproof's valuecopy.
package copystructure

import "chartproof.local/tools/valuecopy"

// Copy returns a deep copy of v (see valuecopy.Copy).
func Copy(v interface{}) (interface{}, error) {
	return valuecopy.Copy(v)
}
