package main

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kiterpc/kite/spi"
)

// store is an in-memory UserService, seeded with a few users. It is safe
// for concurrent use.
type store struct {
	mu     sync.RWMutex
	users  map[int64]*User
	nextID int64
}

func newStore() *store {
	created := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	s := &store{users: map[int64]*User{}, nextID: 1004}
	for _, u := range []*User{
		{ID: 1001, Name: "Ada Lovelace", Email: "ada@example.com", Created: created},
		{ID: 1002, Name: "Alan Turing", Email: "alan@example.com", Created: created},
		{ID: 1003, Name: "Grace Hopper", Email: "grace@example.com", Created: created},
	} {
		s.users[u.ID] = u
	}
	return s
}

func (s *store) GetByID(_ context.Context, id int64) (*User, error) {
	s.mu.RLock()
	u, ok := s.users[id]
	s.mu.RUnlock()
	if !ok {
		return nil, spi.Errorf(spi.NotFound, "no user with id %d", id)
	}
	c := *u // callers must not share the stored value
	return &c, nil
}

func (s *store) Create(_ context.Context, u *User) (*User, error) {
	if u == nil || strings.TrimSpace(u.Name) == "" {
		return nil, spi.Errorf(spi.InvalidArgument, "a user needs a name")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := *u
	c.ID = s.nextID
	s.nextID++
	c.Created = time.Now().UTC().Truncate(time.Second)
	s.users[c.ID] = &c
	out := c
	return &out, nil
}

func (s *store) Delete(_ context.Context, id int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.users[id]; !ok {
		return spi.Errorf(spi.NotFound, "no user with id %d", id)
	}
	delete(s.users, id)
	return nil
}

func (s *store) List(ctx context.Context, q *ListQuery, send func(*User) error) error {
	// Snapshot under the lock, send without it: a slow caller must not
	// block writers.
	s.mu.RLock()
	var matched []User
	for _, u := range s.users {
		if strings.HasPrefix(u.Name, q.Prefix) {
			matched = append(matched, *u)
		}
	}
	s.mu.RUnlock()
	slices.SortFunc(matched, func(a, b User) int { return int(a.ID - b.ID) })
	for i := range matched {
		if q.Limit > 0 && i == q.Limit {
			break
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := send(&matched[i]); err != nil {
			return err
		}
	}
	return nil
}
