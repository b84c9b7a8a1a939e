package main

// A rendered file's documents and their heads, as releaseutil.SortManifests finds them, without its regular
// expression. Helm splits a file with (?:^|\s*\n)---\s* (Go's \s: tab, newline, form feed, carriage return,
// space), and that expression scans at about 20 MB/s: on a chart whose templates emit a 600 kB CRD that carries
// the release name, the scan was a third of a render under a new release name. splitDocuments finds the same
// matches with string search, and headReader reads each document's head without parsing again the parts of a
// large document it has seen before. documents_test.go holds both to helm's own code.

import (
	"encoding/json"
	"strconv"
	"strings"

	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/releaseutil"
	"sigs.k8s.io/yaml"

	"chartproof.local/tools/chartproof-render/memo"
)

// isSpace is the \s of Go's regular expressions (not unicode.IsSpace, which also takes \v and others).
func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r'
}

// spaceEnd is where the run of \s characters that starts at from ends.
func spaceEnd(text string, from int) int {
	for from < len(text) && isSpace(text[from]) {
		from++
	}
	return from
}

// separators returns the [start, end) of each match of helm's separator in text, left to right, as the
// expression's FindAllStringIndex would. A match is either "---" at the very start of the text, or a run of
// whitespace that ends in a newline directly followed by "---" (the run may be empty: just the newline); both
// then take all the whitespace after the dashes. The next match is looked for from the end of the last one.
func separators(text string) [][2]int {
	var found [][2]int
	from := 0
	if strings.HasPrefix(text, "---") {
		end := spaceEnd(text, 3)
		found = append(found, [2]int{0, end})
		from = end
	}
	for from < len(text) {
		offset := strings.Index(text[from:], "\n---")
		if offset < 0 {
			break
		}
		newline := from + offset
		start := newline
		for start > from && isSpace(text[start-1]) {
			start-- // the whitespace before the newline is part of the match, back to where the search began
		}
		end := spaceEnd(text, newline+4)
		found = append(found, [2]int{start, end})
		from = end
	}
	return found
}

// splitDocuments is the documents of releaseutil.SplitManifests(file), in file order: the trimmed file cut at
// each separator, empty pieces dropped, each piece trimmed (a piece of only Unicode spaces, such as "\v",
// is kept and trimmed to "", as helm keeps it).
func splitDocuments(file string) []string {
	text := strings.TrimSpace(file)
	var docs []string
	keep := func(piece string) {
		if piece != "" {
			docs = append(docs, strings.TrimSpace(piece))
		}
	}
	begin := 0
	for _, match := range separators(text) {
		keep(text[begin:match[0]])
		begin = match[1]
	}
	keep(text[begin:])
	return docs
}

// hookEvents are the values of helm.sh/hook that SortManifests knows (test-success: helm 2's name for test).
var hookEvents = func() map[string]release.HookEvent {
	known := map[string]release.HookEvent{"test-success": release.HookTest}
	for _, event := range []release.HookEvent{release.HookPreInstall, release.HookPostInstall, release.HookPreDelete,
		release.HookPostDelete, release.HookPreUpgrade, release.HookPostUpgrade, release.HookPreRollback,
		release.HookPostRollback, release.HookTest} {
		known[event.String()] = event
	}
	return known
}()

// listedValues is an annotation's comma-separated values, each trimmed and lower-cased.
func listedValues(annotation string) []string {
	var out []string
	for _, value := range strings.Split(annotation, ",") {
		out = append(out, strings.ToLower(strings.TrimSpace(value)))
	}
	return out
}

// listed is the values of annotation name as T: none (an empty list, as helm starts a hook's) when it is unset.
func listed[T ~string](annotations map[string]string, name string) []T {
	out := []T{}
	if value, set := annotations[name]; set {
		for _, item := range listedValues(value) {
			out = append(out, T(item))
		}
	}
	return out
}

// classifyFile is SortManifests' share of one file, in file order (not yet sorted by kind). ok is false where
// this file needs helm's own code: a document that does not parse (helm's error names it) or a hook of an
// unknown event (helm logs it, with its own source line). Those files go through SortManifests itself.
func (h *headReader) classifyFile(name, content string) (hooks []*release.Hook, generic []releaseutil.Manifest, ok bool) {
	hooks = []*release.Hook{}
	for _, doc := range splitDocuments(content) {
		head, err := h.head(doc)
		if err != nil {
			return nil, nil, false
		}
		var annotations map[string]string
		if head.Metadata != nil {
			annotations = head.Metadata.Annotations
		}
		events, isHook := annotations[release.HookAnnotation]
		if !isHook {
			generic = append(generic, releaseutil.Manifest{Name: name, Content: doc, Head: &head})
			continue
		}
		hook := &release.Hook{
			Name: head.Metadata.Name, Kind: head.Kind, Path: name, Manifest: doc, Events: []release.HookEvent{},
			DeletePolicies:    listed[release.HookDeletePolicy](annotations, release.HookDeleteAnnotation),
			OutputLogPolicies: listed[release.HookOutputLogPolicy](annotations, release.HookOutputLogAnnotation),
		}
		if weight, err := strconv.Atoi(annotations[release.HookWeightAnnotation]); err == nil {
			hook.Weight = weight // helm's weight: the annotation's integer, or 0
		}
		for _, event := range listedValues(events) {
			known, found := hookEvents[event]
			if !found {
				return nil, nil, false
			}
			hook.Events = append(hook.Events, known)
		}
		hooks = append(hooks, hook)
	}
	return hooks, generic, true
}

// partsFrom is the size from which a document's head is read one top-level key at a time (below it, a parse of
// the whole text costs less than cutting it).
const partsFrom = 8192

// headReader reads SortManifests' head of a document: yaml.Unmarshal of its text into a SimpleHead. A large
// document is cut before each top-level key (topLevelParts). The parts SimpleHead reads (apiVersion, kind,
// metadata, in any letter case, as the JSON decoder matches them) are read each time; every other part only has
// to be valid YAML that reads alone as one key, and that verdict is remembered by the part's text. A CRD whose
// labels carry the release name then costs a parse of its metadata, not of its 600 kB spec. Anything the parts
// cannot decide exactly (a part that does not read alone as one key, such as an alias to another part's anchor;
// a key twice; an error) is left to the parse of the whole text, which gives helm's own verdict and message.
// Each document's head is remembered by its text too: across renders most documents come out the same even
// where their file does not (a file's other documents follow the values under test).
type headReader struct {
	others *memo.Bounded[string, string]   // a non-head part's text -> its key ("" where it does not read alone as one key)
	heads  *memo.Bounded[string, readHead] // a document's text -> its head
}

func newHeadReader() headReader {
	return headReader{others: memo.New[string, string](headMemoLimit), heads: memo.New[string, readHead](headMemoLimit)}
}

type readHead struct {
	head releaseutil.SimpleHead
	err  error
}

const headMemoLimit = 256 << 20

func isHeadKey(key string) bool {
	switch strings.ToLower(key) {
	case "apiversion", "kind", "metadata":
		return true
	}
	return false
}

func (h *headReader) head(doc string) (releaseutil.SimpleHead, error) {
	if found, ok := h.heads.Get(doc); ok {
		return found.head, found.err
	}
	head, err := h.read(doc)
	h.heads.Put(doc, readHead{head, err}, len(doc))
	return head, err
}

func (h *headReader) read(doc string) (releaseutil.SimpleHead, error) {
	if len(doc) >= partsFrom {
		if head, ok := h.byParts(doc); ok {
			return head, nil
		}
	}
	var head releaseutil.SimpleHead
	err := yaml.Unmarshal([]byte(doc), &head)
	return head, err
}

func (h *headReader) byParts(doc string) (releaseutil.SimpleHead, bool) {
	var head releaseutil.SimpleHead
	parts := topLevelParts(doc)
	if len(parts) < 2 {
		return head, false
	}
	seen := map[string]bool{}
	for _, part := range parts {
		key, known := h.others.Get(part)
		if !known {
			key = oneKey(part)
			if !isHeadKey(key) {
				h.others.Put(part, key, len(part))
			}
		}
		if key == "" {
			return head, false
		}
		if isHeadKey(key) { // read into the head as the whole parse reads it (a value converted for its field)
			if err := yaml.Unmarshal([]byte(part), &head); err != nil {
				return head, false
			}
		}
		folded := strings.ToLower(key)
		if seen[folded] {
			return head, false // a key twice: which one counts is the whole parse's to say
		}
		seen[folded] = true
	}
	return head, true
}

// oneKey is the key of part when it reads alone as a mapping of exactly one key (the key as the YAML-to-JSON
// conversion names it), else "".
func oneKey(part string) string {
	converted, err := yaml.YAMLToJSON([]byte(part))
	if err != nil {
		return ""
	}
	var object map[string]json.RawMessage
	if json.Unmarshal(converted, &object) != nil || len(object) != 1 {
		return ""
	}
	for key := range object {
		return key
	}
	return ""
}

// topLevelParts is doc cut before each line that starts a top-level key, each part with the comments, blank
// lines, indented lines and column-0 sequence items ("- x": a top-level key's list) after it, and the comments
// before the first key with the first part. nil when no line starts a key or a line at column 0 is anything else
// (a directive, "...", a flow collection, a merge key, "? "): only a block mapping at the top is cut. Where a
// column-0 line is really inside a multi-line quoted scalar or flow collection, the part before it does not read
// alone as one key, and the whole text is parsed instead.
func topLevelParts(doc string) []string {
	var parts []string
	start, preamble := 0, true
	for position := 0; position < len(doc); {
		end := strings.IndexByte(doc[position:], '\n')
		if end < 0 {
			end = len(doc)
		} else {
			end += position + 1
		}
		line := doc[position:end]
		switch c := line[0]; {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '#' || strings.HasPrefix(line, "- ") || line == "-\n" || line == "-":
			// inside the current part
		case c == '_' || c == '"' || c == '\'' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9':
			if !preamble {
				parts = append(parts, doc[start:position])
				start = position
			}
			preamble = false
		default:
			return nil
		}
		position = end
	}
	if preamble {
		return nil
	}
	return append(parts, doc[start:])
}
