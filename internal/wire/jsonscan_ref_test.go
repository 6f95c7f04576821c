package wire

// scanJSONObject is the reference the span reader is checked against: it walks the
// whole object and reads kind, apiVersion, metadata.{name,namespace,resourceVersion},
// metadata.annotations[k8s.io/initial-events-end] and, when pod, spec.nodeName.
// Keys match exactly; when a key repeats the last one wins; a field whose value is
// not a string is ignored (and an object that is not an object is skipped).
func scanJSONObject(b []byte, pod bool, f *jsonFields) error {
	s := jsonScanner{b: b}
	lv := lvTop
	if pod {
		lv = lvTopPod
	}
	return s.members(lv, f)
}
