"""Foundations shared by every room: paths, durable files and locks, single instance, process
guards, hardware probing, capabilities and logging."""
