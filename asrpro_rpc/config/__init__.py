"""Settings: typed Structs and migration, the durable settings file, and the config service."""
