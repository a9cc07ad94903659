import { useMutation, useQueryClient } from "@tanstack/react-query";
import { api, enc, type App, type AppBody } from "@/lib/api";
import { AppForm, valuesOf } from "@/components/AppForm";
import { Alert } from "@/components/ui/alert";
import { Link } from "react-router";
import { useApp, useAppName } from "./AppPage";

export function AppSettings() {
  const name = useAppName();
  const app = useApp(name);
  const client = useQueryClient();
  const save = useMutation({
    mutationFn: (body: AppBody) => api<App>("PATCH", `/api/apps/${enc(name)}`, body),
    onSuccess: (a) => {
      client.setQueryData(["app", name], a);
      void client.invalidateQueries({ queryKey: ["apps"] });
      void client.invalidateQueries({ queryKey: ["previews", name] });
    },
  });
  if (!app.data) return null;
  const of = app.data.preview_of;
  if (of) {
    // Its settings cannot change (the API answers 409): they are those of the app it previews.
    return (
      <Alert className="max-w-3xl">
        {app.data.name} is the preview of PR #{of.number} and follows the settings of{" "}
        <Link className="underline underline-offset-4" to={`/apps/${enc(of.app)}/settings`}>
          {of.app}
        </Link>
        : change them there.
      </Alert>
    );
  }
  return (
    <div className="grid max-w-3xl gap-4">
      {save.isSuccess && <Alert variant="success">Saved. Settings apply at the next deployment; domains change at once.</Alert>}
      <AppForm
        key={app.data.updated_at}
        initial={valuesOf(app.data)}
        create={false}
        submitLabel="Save"
        pending={save.isPending}
        error={save.error}
        onSubmit={(b) => save.mutate(b)}
      />
    </div>
  );
}
