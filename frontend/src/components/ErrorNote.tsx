import { Alert } from "@/components/ui/alert";
import { ApiError } from "@/lib/api";

/** Shows what went wrong, as the API said it. */
export function ErrorNote({ error }: { error: unknown }) {
  if (!error) return null;
  const message =
    error instanceof ApiError ? `${error.message} (HTTP ${error.status} ${error.code})` : String((error as Error).message ?? error);
  return <Alert variant="destructive">{message}</Alert>;
}
