"""Copy a notebook image's static files out of the image, for nginx to serve.

Runs on the tmpnb host as root with python3 and the `docker` CLI only (no third-party module).

    python3 extract_static --image tmpnb-notebook:debian-1 --dest /var/lib/tmpnb-static

No container is run: one is created (`docker create`), its files are streamed out with
`docker cp CONTAINER:PATH -`, and it is always removed. The copy lands in DEST/<image-id>/:

    DEST/<image-id>/manifest.json   image id, path, every file with its size and sha256, every link
    DEST/<image-id>/files/...       the static files (what nginx serves)
    DEST/current -> <image-id>      switched atomically (rename of a temporary symlink)

The copy is written to a temporary directory under DEST and renamed into place, so nginx never sees
a half-written tree. Symbolic links in the image are resolved inside the image as the image resolves
them, one component at a time, links among a link's parents and chains of links included (Debian's
jupyter-notebook links most of static/components/ to /usr/share/javascript): nothing in the copy
points at the host's own /usr/share. A link that lands on `/`, on a parent of the static directory
or of itself, or goes round a cycle of links, is a loop: left out and reported, as is a dangling one.

Each path of the image is copied once. A later link to it (siblings a -> d, b -> d; the same file
linked twice), or a later link to a directory holding it, becomes a relative symbolic link inside the
copy to that first copy: the copy stays as large as what the image holds, where copying every link
again grew it as 2**levels. Symbolic links rather than hard links: a hard link cannot name a
directory, so each directory would still be made again, its entries multiplied. nginx follows them
(roles/nginx_static sets no `disable_symlinks`); none points outside the copy or at one of its own
parents, and the manifest lists them.

An unchanged image changes nothing. The last line of standard output is a JSON object with
`"changed": true|false` (for Ansible's changed_when). Old copies beyond --keep are removed, but
never the one `current` points to, nor those of images still in use (--keep-image, or every
container's image with --keep-in-use): an old image's containers keep loading their
static files until they are gone.

Exit status: 0 done (changed or not), 1 an error (stated on standard error), 2 bad arguments.
"""

# S603: every subprocess here gets an argument list (no shell) for the docker CLI found on PATH.
