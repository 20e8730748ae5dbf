"""Dynamic providers: what the program manages that no provider package does."""
