"""httpcore-http3: HTTP/3 connections over QUIC, on the `aioquic` library (sans-I/O)."""
