"""The project's LocalStack extension: Lambda and EC2 as host processes, without Docker."""
