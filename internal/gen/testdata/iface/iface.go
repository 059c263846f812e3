// Package iface holds interfaces the generator's golden tests read.
package iface

import (
	"context"
	"net/netip"
	"time"
)

// core is declared here so the generated import of Kite's core package
// must take another name.
var core = "not the package"

var _ = core

// Item is a plain message.
type Item struct {
	ID   int64     `json:"id"`
	At   time.Time `json:"at"`
	Tags []string  `json:"tags"`
}

// Base is embedded into Catalog.
type Base interface {
	// Ping answers its argument.
	Ping(ctx context.Context, msg string) (string, error)
}

// Catalog exercises every shape kite gen accepts.
type Catalog interface {
	Base
	// Get returns one item.
	//
	// It has a second paragraph.
	//
	//kite:idempotent
	Get(ctx context.Context, id int64) (*Item, error)
	// Put stores items; the answer is empty.
	Put(ctx context.Context, items []Item) error
	// Index maps ids to items.
	Index(ctx context.Context, ids map[string]int64) (map[int64]Item, error)
	// Lookup resolves an address.
	Lookup(ctx context.Context, addr netip.Addr) (netip.Prefix, error) //kite:idempotent
	// Watch streams items changed since a time.
	Watch(ctx context.Context, since time.Time, send func(*Item) error) error
	// Names streams plain strings.
	Names(ctx context.Context, prefix *string, send func(string) error) error
}

// Bad holds signatures kite gen must refuse, one method each.
type NoContext interface {
	Get(id int64) (*Item, error)
}

type NoError interface {
	Get(ctx context.Context, id int64) *Item
}

type ChanArg interface {
	Get(ctx context.Context, ids chan int64) (*Item, error)
}

type IfaceResult interface {
	Get(ctx context.Context, id int64) (any, error)
}

type Variadic interface {
	Get(ctx context.Context, ids ...int64) (*Item, error)
}

type BadSend interface {
	Watch(ctx context.Context, id int64, send func(*Item)) error
}

type Typo interface {
	//kite:idempotnet
	Get(ctx context.Context, id int64) (*Item, error)
}

type Empty interface{}

type Generic[T any] interface {
	Get(ctx context.Context, id T) (*Item, error)
}

type NotAnInterface struct{}
