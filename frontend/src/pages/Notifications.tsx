import { useState } from "react";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { api, type Channel, type NewChannel } from "@/lib/api";
import { useChannels } from "@/lib/notifications";
import { Card, CardContent, CardDescription, CardHeader, CardTitle } from "@/components/ui/card";
import { ErrorNote } from "@/components/ErrorNote";
import { SecretOnce } from "@/components/SecretOnce";
import { ChannelForm } from "@/components/notifications/ChannelForm";
import { ChannelList } from "@/components/notifications/ChannelList";
import { Deliveries } from "@/components/notifications/Deliveries";

/** Where Rivetr says what happened (a deployment failed, a certificate expires, a backup
 * failed): the channels, a form to add one, and the record of what was sent. */
export function Notifications() {
  const channels = useChannels();
  return (
    <div className="grid gap-4">
      <div className="grid gap-1">
        <h1 className="text-2xl font-semibold">Notifications</h1>
        <p className="text-sm text-muted-foreground">
          Rivetr tells these channels when a deployment fails or is rolled back, a certificate cannot be renewed, a container
          keeps crashing or a backup fails.
        </p>
      </div>
      <Card>
        <CardHeader>
          <CardTitle>Channels</CardTitle>
        </CardHeader>
        <CardContent className="grid gap-3">
          <ErrorNote error={channels.error} />
          {channels.isPending && <p className="text-sm text-muted-foreground">Loading…</p>}
          {channels.data && <ChannelList channels={channels.data} />}
        </CardContent>
      </Card>
      <AddChannel />
      <Deliveries channels={channels.data ?? []} />
    </div>
  );
}

function AddChannel() {
  const client = useQueryClient();
  // A new form after each channel added: nothing typed (a secret least of all) stays in it.
  const [formKey, setFormKey] = useState(0);
  const add = useMutation({
    mutationFn: (body: NewChannel) => api<Channel>("POST", "/api/notifications", body),
    onSuccess: () => {
      setFormKey((k) => k + 1);
      void client.invalidateQueries({ queryKey: ["channels"] });
    },
  });
  return (
    <Card>
      <CardHeader>
        <CardTitle>Add a channel</CardTitle>
        <CardDescription>
          A signed webhook, Slack, Mattermost or Discord (by their incoming-webhook URL), or email through an SMTP server.
        </CardDescription>
      </CardHeader>
      <CardContent className="grid gap-4">
        {add.data && (
          <div className="grid gap-2" data-testid="channel-added">
            <p className="text-sm" role="status">
              Channel <strong>{add.data.name}</strong> added.
            </p>
            {add.data.signing_secret && (
              <SecretOnce
                title={`Signing secret of ${add.data.name}`}
                secret={add.data.signing_secret}
                text="Shown only now and never again: store it where your receiver checks the X-Rivetr-Signature-256 header (HMAC-SHA256 of the body)."
              />
            )}
          </div>
        )}
        <ChannelForm key={formKey} pending={add.isPending} error={add.error} onSubmit={(body) => add.mutate(body)} />
      </CardContent>
    </Card>
  );
}
