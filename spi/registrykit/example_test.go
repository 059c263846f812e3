package registrykit_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/registrykit"
)

// A registry's watch goroutine publishes what it learns; the watcher's
// Next is the Feed's.
func ExampleFeed() {
	f := registrykit.NewFeed()
	f.Publish([]spi.Instance{{Service: "user", Addr: "127.0.0.1:9001"}})
	f.Publish([]spi.Instance{{Service: "user", Addr: "127.0.0.1:9001"}}) // no change: ignored

	list, _ := f.Next(context.Background())
	fmt.Println(list)

	f.Close(errors.New("watch stopped")) // from Stop, or when the goroutine ends
	_, err := f.Next(context.Background())
	fmt.Println(err)
	// Output:
	// [user@127.0.0.1:9001 w=100]
	// watch stopped
}
