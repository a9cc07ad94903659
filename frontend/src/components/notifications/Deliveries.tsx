import { useState } from "react";
import { STATUSES, useDeliveries } from "@/lib/notifications";
import type { Channel } from "@/lib/api";
import { Card, CardContent, CardDescription, CardHeader, CardTitle } from "@/components/ui/card";
import { Select } from "@/components/ui/select";
import { Label } from "@/components/ui/label";
import { StatusBadge } from "@/components/StatusBadge";
import { ErrorNote } from "@/components/ErrorNote";
import { ago } from "@/lib/utils";

/** A time to come, in the reader's time zone (the title has it as stored). */
function when(iso: string): string {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleTimeString([], { timeStyle: "short" });
}

/** The newest messages and what became of them, filtered by status and channel. */
export function Deliveries({ channels }: { channels: Channel[] }) {
  const [status, setStatus] = useState("");
  const [channel, setChannel] = useState("");
  // A filter on a channel that was deleted meanwhile would answer 404: fall back to all.
  const shownChannel = channels.some((c) => c.name === channel) ? channel : "";
  const deliveries = useDeliveries(status, shownChannel);
  const filtered = status !== "" || shownChannel !== "";
  return (
    <Card>
      <CardHeader>
        <CardTitle>Deliveries</CardTitle>
        <CardDescription>
          Newest first. A message that fails is tried again, with longer pauses in between, until it is sent or given up
          (failed).
        </CardDescription>
      </CardHeader>
      <CardContent className="grid gap-4">
        <div className="flex flex-wrap gap-4">
          <div className="grid min-w-40 gap-1.5">
            <Label htmlFor="deliveries-status">Status</Label>
            <Select id="deliveries-status" value={status} onChange={(e) => setStatus(e.target.value)}>
              <option value="">All</option>
              {STATUSES.map((s) => (
                <option key={s} value={s}>
                  {s}
                </option>
              ))}
            </Select>
          </div>
          <div className="grid min-w-40 gap-1.5">
            <Label htmlFor="deliveries-channel">Channel</Label>
            <Select id="deliveries-channel" value={shownChannel} onChange={(e) => setChannel(e.target.value)}>
              <option value="">All channels</option>
              {channels.map((c) => (
                <option key={c.name} value={c.name}>
                  {c.name}
                </option>
              ))}
            </Select>
          </div>
        </div>
        <ErrorNote error={deliveries.error} />
        {deliveries.isPending && <p className="text-sm text-muted-foreground">Loading…</p>}
        {deliveries.data?.length === 0 && (
          <p className="text-sm text-muted-foreground" data-testid="no-deliveries">
            {filtered ? "No deliveries match." : "No deliveries yet. Send a test message to a channel."}
          </p>
        )}
        {deliveries.data && deliveries.data.length > 0 && (
          <div className="overflow-x-auto rounded-lg border">
            <table className="w-full text-sm" data-testid="deliveries">
              <caption className="sr-only">Deliveries, newest first</caption>
              <thead className="border-b bg-muted text-left text-xs uppercase text-muted-foreground">
                <tr>
                  <th scope="col" className="hidden px-4 py-2 font-medium sm:table-cell">When</th>
                  <th scope="col" className="px-4 py-2 font-medium">Message</th>
                  <th scope="col" className="px-4 py-2 font-medium">Status</th>
                  <th scope="col" className="hidden px-4 py-2 text-right font-medium md:table-cell">Attempts</th>
                  <th scope="col" className="hidden px-4 py-2 font-medium md:table-cell">Last error</th>
                </tr>
              </thead>
              <tbody>
                {deliveries.data.map((d) => (
                  <tr key={d.id} className="border-b align-top last:border-0" data-delivery={d.id} data-status={d.status} data-channel={d.channel}>
                    <td className="hidden whitespace-nowrap px-4 py-3 text-muted-foreground sm:table-cell" title={d.created_at}>
                      {ago(d.created_at)}
                    </td>
                    <td className="px-4 py-3">
                      <div className="font-medium">{d.channel}</div>
                      <div className="break-words">
                        <Title text={d.title} />
                      </div>
                      <code className="font-mono text-xs text-muted-foreground">{d.event}</code>
                      <span className="text-xs text-muted-foreground sm:hidden" title={d.created_at}>
                        {" "}
                        · {ago(d.created_at)}
                      </span>
                      {/* On a phone the details columns are hidden: say them here. */}
                      <div className="text-xs text-muted-foreground md:hidden">
                        {d.attempts} {d.attempts === 1 ? "attempt" : "attempts"}
                      </div>
                      {d.last_error && (
                        <div className="break-words text-xs text-destructive md:hidden" data-last-error>
                          {d.last_error}
                        </div>
                      )}
                    </td>
                    <td className="px-4 py-3">
                      <StatusBadge status={d.status} />
                      {d.status === "pending" && d.next_attempt && (
                        <div className="mt-1 whitespace-nowrap text-xs text-muted-foreground" title={d.next_attempt}>
                          next {when(d.next_attempt)}
                        </div>
                      )}
                      {d.status === "sent" && d.sent_at && (
                        <div className="mt-1 whitespace-nowrap text-xs text-muted-foreground" title={d.sent_at}>
                          {ago(d.sent_at)}
                        </div>
                      )}
                    </td>
                    <td className="hidden px-4 py-3 text-right tabular-nums md:table-cell" data-attempts>
                      {d.attempts}
                    </td>
                    <td className="hidden max-w-md break-words px-4 py-3 text-muted-foreground md:table-cell">
                      {d.last_error ?? "—"}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </CardContent>
    </Card>
  );
}

/** A message's title, its `quoted` names (apps, channels) in code type as in chat apps. */
function Title({ text }: { text: string }) {
  return (
    <>
      {text.split(/(`[^`]+`)/).map((part, i) =>
        /^`[^`]+`$/.test(part) ? (
          <code key={i} className="font-mono text-xs">
            {part.slice(1, -1)}
          </code>
        ) : (
          part
        ),
      )}
    </>
  );
}
