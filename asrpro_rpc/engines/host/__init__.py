"""The engine child process: frames (the pipe wire), client (sidecar side), main (child side)."""
