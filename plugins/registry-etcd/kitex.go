package etcd

import (
	"encoding/json"
	"maps"
	"strings"

	"github.com/kiterpc/kite/spi"
)

// Layouts: what keys and values the registry reads and writes.
const (
	// LayoutKite is Kite's own: <prefix>/<service>/<addr> → the
	// spi.Instance JSON.
	LayoutKite = "kite"
	// LayoutKitex is the one of github.com/kitex-contrib/registry-etcd
	// (common.go, etcd_registry.go): kitex/registry-etcd/<service>/<addr>
	// → {"network","address","weight","tags"}, so Kite and Kitex
	// processes on one etcd see each other's instances (callable where
	// they share a wire protocol, e.g. gRPC).
	LayoutKitex = "kitex"
	// DefaultKitexPrefix is Kitex's default prefix, without a leading
	// slash as Kitex writes it.
	DefaultKitexPrefix = "kitex/registry-etcd"
)

// Tag keys under which the Kite fields Kitex has no place for travel in
// Kitex's tags map, so that they survive a round trip between Kite
// processes; Kitex sees them as ordinary tags.
const (
	kitexTagVersion = "kite.version"
	kitexTagZone    = "kite.zone"
	kitexTagTags    = "kite.tags" // JSON array
)

// kitexInstance is the value Kitex's etcd registry writes (its
// instanceInfo).
type kitexInstance struct {
	Network string            `json:"network"`
	Address string            `json:"address"`
	Weight  int               `json:"weight"`
	Tags    map[string]string `json:"tags"`
}

// kitexAddr splits a Kite address into Kitex's network and address.
func kitexAddr(addr string) (network, address string) {
	if p, ok := strings.CutPrefix(addr, "unix://"); ok {
		return "unix", p
	}
	return "tcp", addr
}

func encodeKitex(in spi.Instance) ([]byte, error) {
	network, address := kitexAddr(in.Addr)
	v := kitexInstance{Network: network, Address: address, Weight: in.Weight, Tags: maps.Clone(in.Metadata)}
	if v.Tags == nil {
		v.Tags = map[string]string{}
	}
	if in.Version != "" {
		v.Tags[kitexTagVersion] = in.Version
	}
	if in.Zone != "" {
		v.Tags[kitexTagZone] = in.Zone
	}
	if len(in.Tags) > 0 {
		b, err := json.Marshal(in.Tags)
		if err != nil {
			return nil, err
		}
		v.Tags[kitexTagTags] = string(b)
	}
	return json.Marshal(v)
}

// decodeKitex reads a Kitex value; Kitex's tags become Metadata, except
// the kite.* keys, which restore Version, Zone and Tags.
func decodeKitex(service string, val []byte) (spi.Instance, bool) {
	var v kitexInstance
	if err := json.Unmarshal(val, &v); err != nil || v.Address == "" {
		return spi.Instance{}, false
	}
	in := spi.Instance{Service: service, Addr: v.Address, Weight: v.Weight}
	switch v.Network {
	case "unix":
		in.Addr = "unix://" + v.Address
	case "", "tcp", "tcp4", "tcp6":
	default:
		return spi.Instance{}, false // a network Kite cannot dial
	}
	for k, val := range v.Tags {
		switch k {
		case kitexTagVersion:
			in.Version = val
		case kitexTagZone:
			in.Zone = val
		case kitexTagTags:
			_ = json.Unmarshal([]byte(val), &in.Tags)
		default:
			if in.Metadata == nil {
				in.Metadata = map[string]string{}
			}
			in.Metadata[k] = val
		}
	}
	return in, true
}

// encode is the value Register writes for in.
func (r *Registry) encode(in spi.Instance) ([]byte, error) {
	if r.opts.layout == LayoutKitex {
		return encodeKitex(in)
	}
	return json.Marshal(in)
}

// decode reads a value of the registry's layout, skipping foreign or
// broken ones.
func (r *Registry) decode(service string, val []byte) (spi.Instance, bool) {
	if r.opts.layout == LayoutKitex {
		return decodeKitex(service, val)
	}
	return decodeInstance(service, val)
}
