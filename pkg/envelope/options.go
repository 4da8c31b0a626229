package envelope

// Option tunes a constructor; options that do not concern it are ignored.
type Option func(*options)

type options struct {
	scryptLogN int
	noCompress bool
}

func buildOptions(opts []Option) options {
	o := options{scryptLogN: DefaultScryptWorkFactor}
	for _, f := range opts {
		f(&o)
	}
	return o
}

// WithScryptWorkFactor sets the log2 scrypt cost of WrapPassphrase
// (1..MaxScryptWorkFactor). Only tests should lower it.
func WithScryptWorkFactor(logN int) Option {
	return func(o *options) { o.scryptLogN = logN }
}

// WithoutCompression makes a Sealer store payloads raw, skipping the trial
// compression, for callers that know their data does not compress.
func WithoutCompression() Option {
	return func(o *options) { o.noCompress = true }
}
