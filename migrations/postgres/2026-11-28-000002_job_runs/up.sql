-- One row per run of a scheduled job: which replica ran it, when, and how it ended.
-- Shows operators (and tests) that runs never overlap across replicas.
CREATE TABLE job_runs (
    id BIGSERIAL PRIMARY KEY,
    job TEXT NOT NULL,
    replica TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    finished_at BIGINT,
    outcome TEXT,
    detail TEXT
);
CREATE INDEX job_runs_job_started ON job_runs (job, started_at);
