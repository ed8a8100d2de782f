-- Views (read models) by id, for the view repository: one row per (view type, id), at the
-- version (the aggregate sequence) it was built up to.

CREATE TABLE events_views (
    view    text   NOT NULL,
    id      text   NOT NULL,
    version bigint NOT NULL,
    body    jsonb  NOT NULL,
    PRIMARY KEY (view, id)
);
