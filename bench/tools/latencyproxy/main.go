// latencyproxy: a loopback TCP relay that makes a server look distant, for bench/export.
//
// Every chunk the client sends reaches the server `-delay` later (a delay line, not a rate limit:
// bulk data in the other direction flows at full speed), so each request round trip - a TLS
// handshake flight, a SOAP call, an HTTP GET - costs that much more, as on a WAN. It counts the
// connections it accepts and prints one JSON line per accept on stdout
// ({"event":"accept","conns":N}), so the bench reads how many connections a tool opened.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

type chunk struct {
	due  time.Time
	data []byte
}

var (
	accepted atomic.Int64
	outMu    sync.Mutex
)

func report(event string) {
	line, _ := json.Marshal(map[string]any{"event": event, "conns": accepted.Load()})
	outMu.Lock()
	fmt.Println(string(line))
	outMu.Unlock()
}

// delayed copies client -> server, each chunk held until `delay` after it arrived.
func delayed(dst, src net.Conn, delay time.Duration) {
	queue := make(chan chunk, 1024)
	go func() {
		defer close(queue)
		for {
			buf := make([]byte, 64<<10)
			n, err := src.Read(buf)
			if n > 0 {
				queue <- chunk{time.Now().Add(delay), buf[:n]}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range queue {
		if wait := time.Until(c.due); wait > 0 {
			time.Sleep(wait)
		}
		if _, err := dst.Write(c.data); err != nil {
			break
		}
	}
	if tcp, ok := dst.(*net.TCPConn); ok {
		_ = tcp.CloseWrite()
	}
}

func serve(client net.Conn, upstream string, delay time.Duration) {
	defer client.Close()
	server, err := net.Dial("tcp", upstream)
	if err != nil {
		return
	}
	defer server.Close()
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(client, server) // server -> client at full speed
		if tcp, ok := client.(*net.TCPConn); ok {
			_ = tcp.CloseWrite()
		}
		close(done)
	}()
	delayed(server, client, delay)
	<-done
}

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	upstream := flag.String("upstream", "", "host:port of the server")
	delay := flag.Duration("delay", 20*time.Millisecond, "added to every client-to-server chunk")
	flag.Parse()
	if *upstream == "" {
		fmt.Fprintln(os.Stderr, "latencyproxy: -upstream is required")
		os.Exit(2)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "latencyproxy:", err)
		os.Exit(1)
	}
	line, _ := json.Marshal(map[string]any{"event": "ready", "host": ln.Addr().String()})
	fmt.Println(string(line))
	go func() {
		// EOF on stdin: the parent is gone.
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		accepted.Add(1)
		report("accept")
		go serve(c, *upstream, *delay)
	}
}
