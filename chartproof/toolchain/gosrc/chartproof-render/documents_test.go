package main

import (
	"fmt"
	"math/rand"
	"reflect"
	"sort"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/releaseutil"
	"sigs.k8s.io/yaml"

	"chartproof.local/tools/chartproof-render/memo"
)

// helmDocuments is releaseutil.SplitManifests' result in its documents' order.
func helmDocuments(file string) []string {
	split := releaseutil.SplitManifests(file)
	keys := make([]string, 0, len(split))
	for key := range split {
		keys = append(keys, key)
	}
	sort.Sort(releaseutil.BySplitManifestsOrder(keys))
	docs := []string{}
	for _, key := range keys {
		docs = append(docs, split[key])
	}
	return docs
}

func ours(file string) []string {
	docs := splitDocuments(file)
	if docs == nil {
		return []string{}
	}
	return docs
}

func TestSplitIsHelmsOnHandMadeFiles(t *testing.T) {
	for _, file := range []string{
		"", "---", "---\n", "a", "---a", "a\n---b", "a\n---\nb", "a  \t\n\n---  \n\n b\n", "a\n----\nb",
		"---\n---\n---", "a\n--- # comment\nb", "a\n  ---\nb", "a\n---\v\n---\nb", "\v---\n---\v", "a\r\n---\r\nb",
		"a\f\n---\fb", "kind: A\n---\n\n\nkind: B\n---", "x: |\n  ---\n  y\n---\nz", "- a\n---\n- b\n...\n---\nc",
		"a\n---\n---\n\n---\nb", "\n\n  ---  \n", "a\n-- -\nb", "a\n\n\n", "---\v", "a\u00a0\n---\u00a0b",
	} {
		if got, want := ours(file), helmDocuments(file); !reflect.DeepEqual(got, want) {
			t.Errorf("file %q: ours %q, helm's %q", file, got, want)
		}
	}
}

func TestSplitIsHelmsOnGeneratedFiles(t *testing.T) {
	alphabet := []string{"-", "-", "-", "---", "\n", "\n", "\n---", " ", "\t", "\r", "\f", "\v", "a", "#", ":", "\u00a0", "\u0085"}
	random := rand.New(rand.NewSource(20261203))
	for i := 0; i < 200000; i++ {
		var file []byte
		for n := random.Intn(24); n > 0; n-- {
			file = append(file, alphabet[random.Intn(len(alphabet))]...)
		}
		if got, want := ours(string(file)), helmDocuments(string(file)); !reflect.DeepEqual(got, want) {
			t.Fatalf("file %q: ours %q, helm's %q", file, got, want)
		}
	}
}

func TestClassifyIsSortManifestsShare(t *testing.T) {
	file := `apiVersion: v1
kind: ConfigMap
metadata:
  name: plain
  annotations:
    note: "x"
---
apiVersion: batch/v1
kind: Job
metadata:
  name: migrate
  annotations:
    "helm.sh/hook": " Pre-Install, post-upgrade "
    "helm.sh/hook-weight": "-5"
    "helm.sh/hook-delete-policy": "before-hook-creation,Hook-Succeeded"
    "helm.sh/hook-output-log-policy": "hook-failed"
---
apiVersion: v1
kind: Pod
metadata:
  name: smoke
  annotations:
    helm.sh/hook: test-success
    helm.sh/hook-weight: " 3"
---
kind: Secret
---
# only a comment
---
apiVersion: v1
kind: Service
metadata:
  name: svc
`
	reader := newHeadReader()
	hooks, generic, ok := reader.classifyFile("c/templates/x.yaml", file)
	if !ok {
		t.Fatal("a file of known hooks that parses needs no fallback")
	}
	wantHooks, wantGeneric, err := releaseutil.SortManifests(map[string]string{"c/templates/x.yaml": file}, nil, releaseutil.InstallOrder)
	if err != nil {
		t.Fatal(err)
	}
	rank := map[string]int{}
	for index, kind := range releaseutil.InstallOrder {
		rank[kind] = index
	}
	sort.SliceStable(hooks, func(i, j int) bool { return kindBefore(rank, hooks[i].Kind, hooks[j].Kind) })
	sort.SliceStable(generic, func(i, j int) bool { return kindBefore(rank, generic[i].Head.Kind, generic[j].Head.Kind) })
	if !reflect.DeepEqual(hooks, wantHooks) {
		t.Errorf("hooks: ours %+v, helm's %+v", hooks, wantHooks)
	}
	if !reflect.DeepEqual(generic, wantGeneric) {
		t.Errorf("manifests: ours %+v, helm's %+v", generic, wantGeneric)
	}
	for _, needsHelm := range []string{"kind: [", "metadata:\n  annotations:\n    helm.sh/hook: pre-instal"} {
		if _, _, ok := reader.classifyFile("f.yaml", needsHelm); ok {
			t.Errorf("%q: expected the fallback to helm's own sort (its error or its log line)", needsHelm)
		}
	}
}

// TestHeadOfALargeDocumentIsTheWholeParse: a document read by parts gets the head (or the error) of
// yaml.Unmarshal of its whole text, whatever its top-level keys, first reading and from the memo alike.
func TestHeadOfALargeDocumentIsTheWholeParse(t *testing.T) {
	var filler strings.Builder
	for i := 0; filler.Len() < partsFrom; i++ {
		fmt.Fprintf(&filler, "  field%d: {type: string, description: \"line %d\"}\n", i, i)
	}
	spec := "spec:\n" + filler.String()
	heads := []string{
		"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  labels: {release: r1}\n",
		"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  labels: {release: r2}\n",
		"# a comment first\napiVersion: v1\nKind: Upper\nmetadata:\n  name: b\n",
		"kind: 5\napiVersion: 1.5\nmetadata:\n  name: 7\n  annotations:\n    helm.sh/hook: pre-install\n",
		"kind: A\nkind: B\nmetadata: {name: twice}\n",
		"kind: A\nKIND: B\n",
		"metadata: null\nkind: X\n",
		"metadata:\n  name: &n anchored\nkind: X\n",
		"kind: [not, a, string]\n",
		"metadata:\n  name: [1, 2]\n",
		"kind: \"multi\nline: quoted\"\n",
		"kind: X\nmetadata: 5\n",
		"apiVersion: v1\nkind: List\nitems:\n- a\n- b\n",
		"...\nkind: X\n",
		"- kind: X\n",
		"? kind\n: X\n",
		"kind: X\n<<: {a: 1}\n",
		"apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n  annotations: {a: b}\n",
	}
	bodies := []string{
		spec,
		spec + "status: {}\n",
		spec + "extra: *n\n",
		spec + "broken: [unclosed\n",
		spec + "other: \"multi\nline: x\"\n",
		"other:\n- 1\n- 2\n" + spec,
		spec + "spec: again\n",
		spec + "\t tab: x\n",
		spec + "tail: [a,\nb]\n",
	}
	reader := newHeadReader()
	// The second round reads the bodies from the parts' memo (the documents' own memo emptied first), the third
	// reads whole documents from theirs.
	for round := 0; round < 3; round++ {
		if round == 1 {
			reader.heads = memo.New[string, readHead](headMemoLimit)
		}
		for _, head := range heads {
			for _, body := range bodies {
				for _, doc := range []string{head + body, body + head} {
					var want releaseutil.SimpleHead
					wantErr := yaml.Unmarshal([]byte(doc), &want)
					got, err := reader.head(doc)
					if (err != nil) != (wantErr != nil) || (err == nil && !reflect.DeepEqual(got, want)) {
						t.Errorf("document %q...%q: ours %+v (%v), the whole parse %+v (%v)",
							doc[:60], doc[len(doc)-60:], got, err, want, wantErr)
					}
				}
			}
		}
	}
	if reader.others.Len() == 0 {
		t.Error("no part was remembered: the documents were never read by parts")
	}
}
