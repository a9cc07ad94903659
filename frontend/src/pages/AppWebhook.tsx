import { useMutation } from "@tanstack/react-query";
import { api, enc, type RotatedSecret } from "@/lib/api";
import { Button } from "@/components/ui/button";
import { Card, CardContent, CardDescription, CardHeader, CardTitle } from "@/components/ui/card";
import { CopyButton } from "@/components/CopyButton";
import { SecretOnce } from "@/components/SecretOnce";
import { ErrorNote } from "@/components/ErrorNote";
import { useApp, useAppName } from "./AppPage";

const FORGES: { key: "github" | "gitlab" | "gitea"; label: string; where: string }[] = [
  { key: "github", label: "GitHub", where: "Secret; content type JSON or form" },
  { key: "gitlab", label: "GitLab", where: "Secret token" },
  { key: "gitea", label: "Gitea, Forgejo, Gogs", where: "Secret" },
];

export function AppWebhook() {
  const name = useAppName();
  const app = useApp(name);
  const rotate = useMutation({
    mutationFn: () => api<RotatedSecret>("POST", `/api/apps/${enc(name)}/webhook-secret`),
  });
  if (!app.data) return null;
  return (
    <div className="grid gap-4">
      <Card>
        <CardHeader>
          <CardTitle>Webhook URLs</CardTitle>
          <CardDescription>A push to the app's branch deploys exactly the pushed commit.</CardDescription>
        </CardHeader>
        <CardContent>
          <dl className="grid gap-3 text-sm">
            {FORGES.map((f) => (
              <div key={f.key} className="grid gap-1">
                <dt className="font-medium">
                  {f.label} <span className="font-normal text-muted-foreground">({f.where})</span>
                </dt>
                <dd className="flex flex-wrap items-center gap-2">
                  <code className="break-all rounded bg-muted px-2 py-1 font-mono text-xs">{app.data.webhooks[f.key]}</code>
                  <CopyButton text={app.data.webhooks[f.key]} label={`Copy ${f.label} URL`} />
                </dd>
              </div>
            ))}
          </dl>
        </CardContent>
      </Card>
      <Card>
        <CardHeader>
          <CardTitle>Secret</CardTitle>
          <CardDescription>A new secret replaces the old one at once; update the forge right after.</CardDescription>
        </CardHeader>
        <CardContent className="grid gap-3">
          <div>
            <Button variant="outline" onClick={() => rotate.mutate()} disabled={rotate.isPending}>
              Rotate the secret
            </Button>
          </div>
          <ErrorNote error={rotate.error} />
          {rotate.data && (
            <SecretOnce title="New webhook secret" secret={rotate.data.webhook_secret} text="Shown only now: paste it into the forge." />
          )}
        </CardContent>
      </Card>
    </div>
  );
}
