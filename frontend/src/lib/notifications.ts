// What the notifications page shares: the kinds of channel and the events Rivetr sends, and
// the queries of channels and deliveries. No event of the live stream reports a delivery, so
// the list of deliveries is asked again every few seconds while one is being retried, and
// now and then otherwise (a deployment that fails sends one at any time).
import { useQuery } from "@tanstack/react-query";
import { get, type Channel, type ChannelKind, type Delivery, type NotifyEvent } from "./api";

export const KINDS: { value: ChannelKind; label: string }[] = [
  { value: "webhook", label: "Webhook (signed JSON)" },
  { value: "slack", label: "Slack" },
  { value: "mattermost", label: "Mattermost" },
  { value: "discord", label: "Discord" },
  { value: "email", label: "Email (SMTP)" },
];

export function kindLabel(kind: string): string {
  return KINDS.find((k) => k.value === kind)?.label.replace(/ \(.*\)$/, "") ?? kind;
}

export const EVENTS: { value: NotifyEvent; label: string }[] = [
  { value: "deployment.succeeded", label: "A deployment succeeded" },
  { value: "deployment.failed", label: "A deployment failed" },
  { value: "deployment.rolled_back", label: "A deployment was rolled back" },
  { value: "certificate.renewal_failed", label: "A certificate's renewal failed" },
  { value: "certificate.expiring", label: "A certificate expires soon" },
  { value: "container.crash_looping", label: "A container keeps crashing" },
  { value: "backup.failed", label: "A database backup failed" },
  { value: "rivetr.started_after_crash", label: "Rivetr started after a crash" },
  { value: "test", label: "Test messages" },
];

export const STATUSES = ["pending", "sent", "failed"] as const;

const PENDING_MS = 2_000;
const IDLE_MS = 15_000;

export function useChannels() {
  return useQuery({ queryKey: ["channels"], queryFn: () => get<Channel[]>("/api/notifications") });
}

/** The newest deliveries, of one status and one channel when given ("" for all). */
export function useDeliveries(status: string, channel: string) {
  const q = new URLSearchParams({ limit: "100" });
  if (status) q.set("status", status);
  if (channel) q.set("channel", channel);
  return useQuery({
    queryKey: ["deliveries", status, channel],
    queryFn: () => get<Delivery[]>(`/api/notifications/deliveries?${q}`),
    refetchInterval: (query) => (query.state.data?.some((d) => d.status === "pending") ? PENDING_MS : IDLE_MS),
  });
}

/** Splits a list typed one per line or separated by commas. */
export function splitList(text: string): string[] {
  return text
    .split(/[\n,]/)
    .map((s) => s.trim())
    .filter(Boolean);
}
