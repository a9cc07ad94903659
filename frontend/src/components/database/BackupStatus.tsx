import { Badge, type BadgeProps } from "@/components/ui/badge";

const VARIANT: Record<string, BadgeProps["variant"]> = {
  running: "warning",
  succeeded: "success",
  failed: "destructive",
};

/** A backup's status: `running` is work in progress here, not a service that is up. */
export function BackupStatus({ status }: { status: string }) {
  return (
    <Badge variant={VARIANT[status] ?? "outline"} data-status={status}>
      {status}
    </Badge>
  );
}
