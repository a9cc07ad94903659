import { useState } from "react";
import { enc } from "@/lib/api";
import { useLogStream } from "@/lib/useLogStream";
import { LogViewer } from "@/components/LogViewer";
import { Button } from "@/components/ui/button";
import { useAppName } from "./AppPage";

/** The app's own output, live, from all its running containers. */
export function AppLogs() {
  const name = useAppName();
  const [round, setRound] = useState(0);
  const url = `/api/apps/${enc(name)}/logs?follow=1&tail=200&r=${round}`;
  const log = useLogStream(url, ["stdout", "stderr", "error"], false);
  return (
    <div className="grid gap-2">
      <div className="flex items-center gap-3 text-sm text-muted-foreground">
        <span role="status">{log.state === "open" ? "Following the app's output" : log.state === "dropped" ? "The stream ended" : "Connecting…"}</span>
        {log.state === "dropped" && (
          <Button size="sm" variant="outline" onClick={() => setRound(round + 1)}>
            Reconnect
          </Button>
        )}
      </div>
      <LogViewer lines={log.lines} count={log.count} label={`Output of ${name}`} />
    </div>
  );
}
