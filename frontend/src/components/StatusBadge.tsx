import { Badge, type BadgeProps } from "@/components/ui/badge";

const VARIANT: Record<string, BadgeProps["variant"]> = {
  running: "success",
  deploying: "warning",
  queued: "secondary",
  cloning: "warning",
  building: "warning",
  starting: "warning",
  health_checking: "warning",
  switching: "warning",
  failed: "destructive",
  cancelled: "secondary",
  superseded: "secondary",
  replaced: "outline",
  stopped: "secondary",
  new: "outline",
  // A notification's delivery: being tried, or given up (`failed`, above).
  sent: "success",
  pending: "warning",
  // A managed database whose container is gone from the engine.
  missing: "destructive",
};

/** A status word in a colour that says how it is going; the word itself is always shown. */
export function StatusBadge({ status }: { status: string }) {
  return (
    <Badge variant={VARIANT[status] ?? "outline"} data-status={status}>
      {status.replace("_", " ")}
    </Badge>
  );
}
