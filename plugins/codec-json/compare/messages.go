package compare

import (
	"fmt"
	"strings"
)

// Small is a typical request: ~128 bytes of JSON.
type Small struct {
	ID     int64    `json:"id"`
	Name   string   `json:"name"`
	Email  string   `json:"email"`
	Active bool     `json:"active"`
	Score  float64  `json:"score"`
	Tags   []string `json:"tags"`
}

// Medium is ~1 KiB, mostly one string field (a text payload).
type Medium struct {
	ID      int64             `json:"id"`
	TraceID string            `json:"trace_id"`
	Body    string            `json:"body"`
	Labels  map[string]string `json:"labels"`
}

// Item is one element of Large.
type Item struct {
	SKU      string  `json:"sku"`
	Title    string  `json:"title"`
	Price    float64 `json:"price"`
	Quantity int32   `json:"quantity"`
	InStock  bool    `json:"in_stock"`
}

// Large is a ~64 KiB response: a slice of structs.
type Large struct {
	Page  int    `json:"page"`
	Total int    `json:"total"`
	Items []Item `json:"items"`
}

// Samples returns one value of each message.
func Samples() (*Small, *Medium, *Large) {
	s := &Small{ID: 1001, Name: "Ada Lovelace", Email: "ada@example.com", Active: true, Score: 97.25,
		Tags: []string{"admin", "beta"}}
	m := &Medium{ID: 42, TraceID: "4bf92f3577b34da6a3ce929d0e0e4736",
		Body:   strings.Repeat("Kite carries this text payload; ", 28),
		Labels: map[string]string{"zone": "eu-west-1", "env": "prod"}}
	l := &Large{Page: 1, Total: 640}
	for i := range 640 {
		l.Items = append(l.Items, Item{SKU: fmt.Sprintf("SKU-%06d", i), Title: fmt.Sprintf("Item number %d in stock", i),
			Price: float64(i) * 1.25, Quantity: int32(i % 17), InStock: i%3 != 0})
	}
	return s, m, l
}
