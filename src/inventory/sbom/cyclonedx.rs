//! CycloneDX 1.4–1.7 JSON: `components[]` (nested `components` included, to
//! [`MAX_NESTING`](super::MAX_NESTING) levels) and `metadata.component`, the subject of the BOM,
//! each with `name`, `version`, `purl` and `cpe`.

use serde::Deserialize;

use super::{Collector, SbomError, MAX_NESTING};

#[derive(Deserialize)]
pub(super) struct Metadata {
    component: Option<Component>,
}

#[derive(Deserialize)]
pub(super) struct Component {
    name: Option<String>,
    version: Option<String>,
    purl: Option<String>,
    cpe: Option<String>,
    #[serde(default)]
    components: Vec<Component>,
}

pub(super) fn collect(
    metadata: Option<Metadata>,
    components: Vec<Component>,
    out: &mut Collector,
) -> Result<(), SbomError> {
    let roots = metadata
        .and_then(|m| m.component)
        .into_iter()
        .chain(components);
    // Depth-first without recursion, so that the depth bound, not the stack, decides.
    let mut stack: Vec<(Component, usize)> = roots.map(|c| (c, 1)).collect();
    while let Some((mut c, depth)) = stack.pop() {
        if depth > MAX_NESTING {
            return Err(SbomError::TooDeep {
                depth,
                max: MAX_NESTING,
            });
        }
        // The name alone (not `group/name`): a query by name names the package as users do.
        out.add(
            c.name.as_deref(),
            c.version.as_deref(),
            c.purl.as_deref(),
            c.cpe.as_deref(),
        )?;
        stack.extend(
            std::mem::take(&mut c.components)
                .into_iter()
                .map(|c| (c, depth + 1)),
        );
    }
    Ok(())
}
