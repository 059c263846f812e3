package spi

// FactoryOf returns the Factory that decodes a plugin's configuration
// block into a C (with Config.Decode, so unknown attributes are errors)
// and passes it to build. It is the New of most catalog entries:
//
//	spi.Register(spi.Entry{Kind: spi.KindRegistry, Name: "zk", New: spi.FactoryOf(New)})
//
// where New is func(Config) (*Registry, error). A plugin without
// settings passes func(struct{}) (…, error), so that a typo in its block
// is still reported rather than ignored. When build fails the Factory
// returns a nil value, never a typed nil pointer in the interface.
func FactoryOf[C, T any](build func(C) (T, error)) Factory {
	return func(cfg Config) (any, error) {
		var c C
		if err := cfg.Decode(&c); err != nil {
			return nil, err
		}
		v, err := build(c)
		if err != nil {
			return nil, err
		}
		return v, nil
	}
}
