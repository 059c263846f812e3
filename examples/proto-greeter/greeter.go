package main

import (
	"context"
	"fmt"
	"io"

	"github.com/kiterpc/kite/examples/proto-greeter/greeterpb"
	"github.com/kiterpc/kite/spi"
)

// greeter implements greeterpb.GreeterServer. Embedding the generated
// UnimplementedGreeterServer keeps it compiling when the service grows.
type greeter struct {
	greeterpb.UnimplementedGreeterServer
}

// maxCount bounds StreamGreetings so one request cannot ask for an
// endless stream.
const maxCount = 1000

func (greeter) SayHello(_ context.Context, req *greeterpb.HelloRequest) (*greeterpb.HelloReply, error) {
	if req.GetName() == "" {
		return nil, spi.Errorf(spi.InvalidArgument, "a name is required")
	}
	return &greeterpb.HelloReply{Message: "Hello, " + req.GetName() + "!", Seq: 1}, nil
}

func (greeter) StreamGreetings(ctx context.Context, req *greeterpb.HelloRequest, stream greeterpb.Greeter_StreamGreetingsServer) error {
	n := req.GetCount()
	if n <= 0 {
		n = 1
	}
	if n > maxCount {
		return spi.Errorf(spi.OutOfRange, "count %d exceeds %d", n, maxCount)
	}
	for i := int32(1); i <= n; i++ {
		if err := stream.Send(&greeterpb.HelloReply{Message: fmt.Sprintf("Hello #%d, %s!", i, req.GetName()), Seq: i}); err != nil {
			return err
		}
	}
	return nil
}

func (greeter) RecordNames(_ context.Context, stream greeterpb.Greeter_RecordNamesServer) error {
	sum := &greeterpb.NameSummary{}
	for {
		req, err := stream.Recv()
		if err == io.EOF {
			return stream.SendAndClose(sum)
		}
		if err != nil {
			return err
		}
		sum.Count++
		sum.Names = append(sum.Names, req.GetName())
	}
}

func (greeter) Chat(_ context.Context, stream greeterpb.Greeter_ChatServer) error {
	for seq := int32(1); ; seq++ {
		req, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := stream.Send(&greeterpb.HelloReply{Message: "Hi, " + req.GetName() + "!", Seq: seq}); err != nil {
			return err
		}
	}
}
