import { Link } from "react-router";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { api, enc, type AppBody, type CreatedApp } from "@/lib/api";
import { AppForm, valuesOf } from "@/components/AppForm";
import { SecretOnce } from "@/components/SecretOnce";
import { Button } from "@/components/ui/button";

export function NewApp() {
  const client = useQueryClient();
  const create = useMutation({
    mutationFn: (body: AppBody) => api<CreatedApp>("POST", "/api/apps", body),
    onSuccess: () => client.invalidateQueries({ queryKey: ["apps"] }),
  });
  if (create.data) {
    const app = create.data;
    return (
      <div className="grid max-w-2xl gap-4">
        <h1 className="text-2xl font-semibold">App {app.name} created</h1>
        <SecretOnce
          title="Webhook secret"
          secret={app.webhook_secret}
          text="Give this secret to your forge with one of the webhook URLs on the app's Webhook page. It is shown only now."
        />
        <div>
          <Button asChild>
            <Link to={`/apps/${enc(app.name)}`}>Open {app.name}</Link>
          </Button>
        </div>
      </div>
    );
  }
  return (
    <div className="grid max-w-3xl gap-4">
      <h1 className="text-2xl font-semibold">New app</h1>
      <AppForm
        initial={valuesOf()}
        create
        submitLabel="Create app"
        pending={create.isPending}
        error={create.error}
        onSubmit={(b) => create.mutate(b)}
      />
    </div>
  );
}
