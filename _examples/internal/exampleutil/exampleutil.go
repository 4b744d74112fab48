// Package exampleutil holds the start-up code the examples share.
package exampleutil

import (
	"crypto/rand"
	"encoding/hex"
	"log"
	"os"
)

// SecretKey returns the session secret from FASTSESSION_SECRET (hex, 32
// bytes or more), or a random one for this run, which logs everyone out on
// restart: fine for a demo, never for production.
func SecretKey() []byte {
	if s := os.Getenv("FASTSESSION_SECRET"); s != "" {
		k, err := hex.DecodeString(s)
		if err != nil || len(k) < 32 {
			log.Fatal("FASTSESSION_SECRET must be at least 32 bytes, hex-encoded (openssl rand -hex 32)")
		}
		return k
	}
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	log.Print("FASTSESSION_SECRET is not set: using a random key for this run")
	return k
}

// Addr returns the listen address from ADDR, 127.0.0.1:8080 by default.
func Addr() string {
	if a := os.Getenv("ADDR"); a != "" {
		return a
	}
	return "127.0.0.1:8080"
}
