package main

import (
	"context"
	"time"
)

//go:generate go run github.com/kiterpc/kite/cmd/kite gen -type UserService

// User is the message UserService trades in. It travels as JSON (the
// default codec), so its fields carry json tags.
type User struct {
	ID      int64     `json:"id"`
	Name    string    `json:"name"`
	Email   string    `json:"email"`
	Created time.Time `json:"created"`
}

// ListQuery selects users for List.
type ListQuery struct {
	// Prefix keeps users whose name starts with it; empty keeps all.
	Prefix string `json:"prefix"`
	// Limit bounds how many users are sent; 0 means no bound.
	Limit int `json:"limit"`
}

// UserService is the seed's user service. `kite gen` turns it into a
// typed client (NewUserServiceClient) and a reflection-free server
// registration (RegisterUserService); see userservice_kite.go.
type UserService interface {
	// GetByID returns the user with the given id, or a NotFound error.
	//
	//kite:idempotent
	GetByID(ctx context.Context, id int64) (*User, error)
	// Create stores a new user and returns it with its id and creation
	// time filled in.
	Create(ctx context.Context, u *User) (*User, error)
	// Delete removes the user with the given id; deleting a missing user
	// is a NotFound error.
	Delete(ctx context.Context, id int64) error
	// List streams the users matching q, in id order.
	List(ctx context.Context, q *ListQuery, send func(*User) error) error
}
