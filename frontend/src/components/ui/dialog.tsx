// A modal dialog with the API of shadcn/ui's, on the browser's own <dialog> (showModal): the
// page behind is inert, focus stays inside, Escape closes it and focus returns to the
// trigger. Not Radix's Dialog: its scroll lock injects a <style> element, which the
// dashboard's Content-Security-Policy (style-src 'self', no inline styles) refuses.
import * as React from "react";
import { Slot } from "@radix-ui/react-slot";
import { cn } from "@/lib/utils";

interface DialogState {
  open: boolean;
  setOpen: (open: boolean) => void;
  titleId: string;
  descriptionId: string;
}

const DialogContext = React.createContext<DialogState | null>(null);

function useDialog(): DialogState {
  const ctx = React.useContext(DialogContext);
  if (!ctx) throw new Error("Dialog parts must be inside <Dialog>");
  return ctx;
}

function Dialog({ children, onOpenChange }: { children: React.ReactNode; onOpenChange?: (open: boolean) => void }) {
  const [open, setOpenState] = React.useState(false);
  const titleId = React.useId();
  const descriptionId = React.useId();
  const setOpen = React.useCallback(
    (next: boolean) => {
      setOpenState(next);
      onOpenChange?.(next);
    },
    [onOpenChange],
  );
  return <DialogContext.Provider value={{ open, setOpen, titleId, descriptionId }}>{children}</DialogContext.Provider>;
}

function DialogTrigger({ asChild, ...props }: React.ButtonHTMLAttributes<HTMLButtonElement> & { asChild?: boolean }) {
  const { setOpen } = useDialog();
  const Comp = asChild ? Slot : "button";
  return <Comp aria-haspopup="dialog" onClick={() => setOpen(true)} {...props} />;
}

function DialogClose({ asChild, ...props }: React.ButtonHTMLAttributes<HTMLButtonElement> & { asChild?: boolean }) {
  const { setOpen } = useDialog();
  const Comp = asChild ? Slot : "button";
  return <Comp onClick={() => setOpen(false)} {...props} />;
}

function DialogContent({ className, children }: { className?: string; children: React.ReactNode }) {
  const { open, setOpen, titleId, descriptionId } = useDialog();
  const ref = React.useRef<HTMLDialogElement>(null);
  React.useEffect(() => {
    const el = ref.current;
    if (!el) return;
    if (open && !el.open) el.showModal();
    if (!open && el.open) el.close();
  }, [open]);
  return (
    <dialog
      ref={ref}
      aria-labelledby={titleId}
      aria-describedby={descriptionId}
      onClose={() => setOpen(false)}
      className={cn(
        "m-auto w-[calc(100%-2rem)] max-w-lg rounded-xl border bg-background p-6 text-foreground shadow-lg backdrop:bg-black/60",
        className,
      )}
    >
      {open && (
        <div className="relative grid gap-4">
          {children}
          <button
            type="button"
            onClick={() => setOpen(false)}
            className="absolute -right-2 -top-2 rounded-sm p-1 opacity-70 hover:opacity-100 focus:outline-none focus-visible:ring-2 focus-visible:ring-ring"
          >
            <span aria-hidden="true">✕</span>
            <span className="sr-only">Close</span>
          </button>
        </div>
      )}
    </dialog>
  );
}

const DialogHeader = ({ className, ...props }: React.HTMLAttributes<HTMLDivElement>) => (
  <div className={cn("flex flex-col gap-1.5 pr-6 text-left", className)} {...props} />
);

const DialogFooter = ({ className, ...props }: React.HTMLAttributes<HTMLDivElement>) => (
  <div className={cn("flex flex-col-reverse gap-2 sm:flex-row sm:justify-end", className)} {...props} />
);

function DialogTitle({ className, ...props }: React.HTMLAttributes<HTMLHeadingElement>) {
  const { titleId } = useDialog();
  return <h2 id={titleId} className={cn("text-lg font-semibold", className)} {...props} />;
}

function DialogDescription({ className, ...props }: React.HTMLAttributes<HTMLParagraphElement>) {
  const { descriptionId } = useDialog();
  return <p id={descriptionId} className={cn("text-sm text-muted-foreground", className)} {...props} />;
}

export { Dialog, DialogTrigger, DialogClose, DialogContent, DialogHeader, DialogFooter, DialogTitle, DialogDescription };
