package scan

// Less reports whether path a comes before path b in scan order: component
// by component, each compared bytewise, so a directory comes right before its
// contents ("a" < "a/z" < "a-b", where plain string order has "a-b" < "a/z").
// Merge other sorted path lists against a scan with it.
func Less(a, b string) bool {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		ca, cb := a[i], b[i]
		if ca == cb {
			continue
		}
		// '/' ends a component, so it sorts before every other byte.
		if ca == '/' {
			return true
		}
		if cb == '/' {
			return false
		}
		return ca < cb
	}
	return len(a) < len(b)
}
