// Package balancerkit holds the parts of a spi.Balancer that several
// balancer plugins would otherwise write again: the picker of an empty
// instance list, and the weights of one period of a pick table
// (spi.PickTable's Schedule), which a balancer then orders its own way
// (shuffled for a random balancer, spread evenly for a round-robin one).
//
// The package imports only spi; it is meant for plugin authors.
package balancerkit
