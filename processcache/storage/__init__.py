"""Where processcache's data lives: the SQL database, its schema, and the stores that read and write it."""
