-- +goose Up
CREATE TABLE authors (
	id   bigserial PRIMARY KEY,
	name text NOT NULL
);

-- +goose Down
DROP TABLE authors;
