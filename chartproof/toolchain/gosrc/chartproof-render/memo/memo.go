// Package memo is the renderer's one kind of cache: a map that forgets everything once the sizes of what it
// holds pass a bound, so a long run's memory stays bounded without bookkeeping per entry.
package memo

// Bounded maps K to V, up to limit in the sizes given to Put. It is not safe for concurrent use.
type Bounded[K comparable, V any] struct {
	entries map[K]V
	size    int
	limit   int
}

// New is an empty Bounded holding up to limit.
func New[K comparable, V any](limit int) *Bounded[K, V] {
	return &Bounded[K, V]{entries: map[K]V{}, limit: limit}
}

// Get is the value kept for key.
func (m *Bounded[K, V]) Get(key K) (V, bool) {
	value, ok := m.entries[key]
	return value, ok
}

// Put keeps value for key, counting size against the bound; past the bound, everything kept before is
// forgotten first.
func (m *Bounded[K, V]) Put(key K, value V, size int) {
	if m.size+size > m.limit {
		m.entries, m.size = map[K]V{}, 0
	}
	m.entries[key] = value
	m.size += size
}

// Len is the number of entries kept.
func (m *Bounded[K, V]) Len() int { return len(m.entries) }
