// What the database pages share: the engines Rivetr runs, and the queries of databases and
// backup destinations. No event reports a database's change, so a list with one coming up
// (or a backup running) is asked again every few seconds until it settles.
import { useQuery } from "@tanstack/react-query";
import { enc, get, type DbEngine, type Destination, type ManagedDatabase } from "./api";

export const ENGINES: { value: DbEngine; label: string; version: string }[] = [
  { value: "postgres", label: "PostgreSQL", version: "16" },
  { value: "mariadb", label: "MariaDB", version: "11" },
  { value: "mysql", label: "MySQL", version: "8" },
  { value: "redis", label: "Redis", version: "7" },
];

export function engineLabel(engine: string): string {
  return ENGINES.find((e) => e.value === engine)?.label ?? engine;
}

const SETTLE_MS = 2_000;

export function useDatabases() {
  return useQuery({
    queryKey: ["databases"],
    queryFn: () => get<ManagedDatabase[]>("/api/databases"),
    refetchInterval: (q) => (q.state.data?.some((d) => d.status === "starting") ? SETTLE_MS : false),
  });
}

export function useDatabase(name: string) {
  return useQuery({
    queryKey: ["database", name],
    queryFn: () => get<ManagedDatabase>(`/api/databases/${enc(name)}`),
    refetchInterval: (q) => (q.state.data?.status === "starting" ? SETTLE_MS : false),
  });
}

/** `local` and the S3 destinations. */
export function useDestinations() {
  return useQuery({ queryKey: ["backup-destinations"], queryFn: () => get<Destination[]>("/api/backup-destinations") });
}
