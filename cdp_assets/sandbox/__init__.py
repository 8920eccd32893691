"""Local stand-ins for the external world: seeded people and companies, synthetic event dumps."""
