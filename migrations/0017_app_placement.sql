-- Docker Swarm support (issue 15): where an app's replicas may run on a swarm, as JSON
-- (`{"constraints": [...], "max_per_node": N, "spread": [...]}`, like `healthcheck`). Ignored
-- on a single engine; `{}` is no constraint, no limit per node and no spread.
ALTER TABLE apps ADD COLUMN placement TEXT NOT NULL DEFAULT '{}';
