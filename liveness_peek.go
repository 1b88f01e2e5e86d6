//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package piccolo

import "syscall"

// peek reports whether socket fd has something to read, without reading
// it and without waiting.
func peek(fd uintptr) bool {
	var b [1]byte
	for {
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch err {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		}
		return true // a byte, the end of the stream (0 bytes) or an error
	}
}
